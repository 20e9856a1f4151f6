package integration

import (
	"runtime/metrics"
	"testing"
	"time"
)

// CPUReading is what the process has used so far: CPU time (user and
// system; zero where the platform does not report it), the garbage
// collector's estimated share of it, and GC cycles.
type CPUReading struct {
	total, gc time.Duration
	cycles    uint64
}

// ReadCPU reads the process's CPUReading now.
func ReadCPU() CPUReading {
	ms := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(ms)
	return CPUReading{
		total:  processCPU(),
		gc:     time.Duration(ms[0].Value.Float64() * float64(time.Second)),
		cycles: ms[1].Value.Uint64(),
	}
}

// ReportCPU reports the process's CPU time per message since since (a
// ReadCPU reading) as cpu-ns/msg: unlike msgs/s, it barely moves with the
// load other processes put on the host, so it compares client costs on a
// busy machine (where the platform reports no process CPU time it is left
// out). gc-cpu-ns/msg is the part of it the runtime attributes to the
// garbage collector (an estimate, runtime/metrics), and gc/kmsg the GC
// cycles per 1,000 messages: in a benchmark's small process (a heap goal
// of 4 MiB) a consumer's garbage costs it more than it would in a service
// with a larger heap.
func ReportCPU(b *testing.B, n int, since CPUReading) {
	now := ReadCPU()
	if now.total > 0 {
		b.ReportMetric(float64(now.total-since.total)/float64(n), "cpu-ns/msg")
	}
	b.ReportMetric(float64(now.gc-since.gc)/float64(n), "gc-cpu-ns/msg")
	b.ReportMetric(float64(now.cycles-since.cycles)*1000/float64(n), "gc/kmsg")
}
