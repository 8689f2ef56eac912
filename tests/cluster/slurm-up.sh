#!/usr/bin/env bash
# Bring up a one-node SLURM cluster on 127.0.0.1 with two fake GPUs, for tests only.
# Needs root and Debian's slurm-wlm + munge (installed here if missing and apt works).
# Traps found bringing SLURM up on this machine kind: the config must live at /etc/slurm/slurm.conf (the
# jobstep plugin strips SLURM_CONF); no accounting daemon (squeue as status command);
# GRES files are symlinks to /dev/null; no systemd, so the daemons start by hand.
set -euo pipefail
STATE=${QS_SLURM_STATE:-/var/lib/quantstudy-slurm}
HOST=$(hostname -s)

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

mkdir -p "$STATE"/{gpu,spool/ctld,spool/d,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge
for i in 0 1; do ln -sf /dev/null "$STATE/gpu/gpu$i"; done

# munge: a key, then the daemon as its own user.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge
chmod 0700 /etc/munge; chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
fi

CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=quantstudy-test
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=gpu Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
cat > /etc/slurm/gres.conf <<CONF
NodeName=$HOST Name=gpu File=$STATE/gpu/gpu[0-1]
CONF
cat > /etc/slurm/cgroup.conf <<CONF
CgroupPlugin=autodetect
CONF

pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 60); do
    if sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then
        echo "slurm up: $(sinfo -h -o '%P %D %t %G')"
        exit 0
    fi
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    sleep 0.5
done
echo "slurm did not come up; logs:" >&2
tail -n 20 "$STATE"/log/*.log >&2 || true
exit 1
