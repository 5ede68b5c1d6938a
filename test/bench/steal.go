package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTicks are the machine's CPU time counters from /proc/stat, summed over its CPUs.
type cpuTicks struct {
	steal, total uint64
}

// readCPUTicks reads the "cpu" line of /proc/stat. Steal is the time the hypervisor ran
// something else while this machine's CPUs had work: on a shared VM it comes and goes in
// bursts, and a run that lost much of it measures the host, not the servers.
func readCPUTicks() (cpuTicks, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuTicks{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var t cpuTicks
	for i, f := range fields[1:] {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return cpuTicks{}, fmt.Errorf("/proc/stat: %w", err)
		}
		if i == 7 { // user nice system idle iowait irq softirq steal ...
			t.steal = n
		}
		if i <= 7 { // guest time is already counted in user and nice
			t.total += n
		}
	}
	return t, nil
}

// stealSince is the fraction of the machine's CPU time the host took between before and t.
func (t cpuTicks) stealSince(before cpuTicks) float64 {
	if t.total <= before.total {
		return 0
	}
	return float64(t.steal-before.steal) / float64(t.total-before.total)
}
