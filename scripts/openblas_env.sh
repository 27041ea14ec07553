# openblas_env.sh (sourced): Debian 12's OpenBLAS 0.3.21 does not know this
# generation of Xeon; left to itself it falls back to its slowest kernels
# (Prescott), and older builds compute wrong results. When the environment has
# not already chosen, pick the kernel family the CPU supports and tell OpenBLAS
# the real L2 size. Values already set are kept as they are.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX
  elif grep -qw avx2 /proc/cpuinfo; then export OPENBLAS_CORETYPE=Haswell
  fi
fi
if [ -z "${OPENBLAS_L2_SIZE:-}" ] && [ -r /sys/devices/system/cpu/cpu0/cache/index2/size ]; then
  l2=$(tr -dc '0-9' < /sys/devices/system/cpu/cpu0/cache/index2/size)  # in KiB, as OpenBLAS wants
  [ -n "$l2" ] && export OPENBLAS_L2_SIZE="$l2"
fi
