#!/usr/bin/env bash
# Patches per hour of the deblend step under the real middleware, three ways, on this machine:
# `pipetask run` serial, `pipetask run -j 2`, and `bps submit bps/local.yaml` (one job per tract).
#
#   bash bps/throughput.sh WORKDIR [N_PATCHES]      (from the repository root, in the .venv with [lsst,bps])
#
# Prints a Markdown table (doc/pipeline.md has the one measured here). Each way gets a fresh output
# collection of the same repository of N simulated patches (default 4), shipped models, CPU, one
# thread per process.
set -euo pipefail
work=$(realpath -m "$1"); patches=${2:-4}
bin=$(dirname "$(command -v pipetask)")
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 CTRL_MPEXEC_DIR=$(dirname "$bin") DAF_BUTLER_DIR=$(dirname "$bin")
rm -rf "$work"; mkdir -p "$work"
madness-sim butler "$work/repo" --patches "$patches" > /dev/null
pipeline=pipelines/MadnessDeblend.yaml
options=(-b "$work/repo" -i madness/inputs -p "$pipeline" --register-dataset-types
         -c deblend:multibandDeblend.device=cpu)
seconds() { local start=$(date +%s.%N); "$@" > "$work/last.log" 2>&1; echo "$(date +%s.%N) - $start" | bc; }
serial=$(seconds pipetask run "${options[@]}" -o madness/serial)
parallel=$(seconds pipetask run -j 2 "${options[@]}" -o madness/j2)
bps=$(seconds bps submit bps/local.yaml -b "$work/repo")
load=$(cut -d' ' -f1 /proc/loadavg)
echo "| way | wall (s) for $patches patches | patches per hour |"
echo "|---|---|---|"
for row in "pipetask run, serial:$serial" "pipetask run -j 2:$parallel" "bps submit bps/local.yaml (parsl, one job per tract):$bps"; do
  printf '| %s | %.0f | %.0f |\n' "${row%%:*}" "${row##*:}" "$(echo "$patches * 3600 / ${row##*:}" | bc -l)"
done
echo; echo "($(getconf _NPROCESSORS_ONLN) cores, one-minute load average $load at the end)"
