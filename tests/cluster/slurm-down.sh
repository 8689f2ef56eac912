#!/usr/bin/env bash
# Stop what slurm-up.sh started: cancel jobs, stop slurmd, slurmctld and munged.
STATE=${QS_SLURM_STATE:-/var/lib/quantstudy-slurm}
scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
for d in slurmd slurmctld munged; do pkill -x "$d" 2>/dev/null || true; done
for _ in $(seq 1 40); do
    pgrep -x slurmd >/dev/null || pgrep -x slurmctld >/dev/null || pgrep -x munged >/dev/null || exit 0
    sleep 0.25
done
for d in slurmd slurmctld munged; do pkill -9 -x "$d" 2>/dev/null || true; done
exit 0
