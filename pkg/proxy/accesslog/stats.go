package accesslog

import (
	"fmt"
	"io"
	"sync/atomic"
)

// fileStats are the access log files' counters, process-wide as Envoy's
// (source/common/access_log/access_log_manager_impl.h
// ACCESS_LOG_FILE_STATS, prefix "filesystem."): lines buffered, file
// writes completed and failed, flushes the interval timer made, and the
// bytes waiting. Envoy's buffer has no bound; sluice's drops lines
// beyond maxBuffered, counted as sluice.access_log.lines_dropped.
var fileStats struct {
	writeBuffered, writeCompleted, writeFailed, flushedByTimer atomic.Uint64
	totalBuffered                                              atomic.Int64
	linesDropped                                               atomic.Uint64
}

// WriteStats writes the access log file counters in the admin's /stats
// text format.
func WriteStats(w io.Writer) {
	fmt.Fprintf(w, "filesystem.flushed_by_timer: %d\n", fileStats.flushedByTimer.Load())
	fmt.Fprintf(w, "filesystem.write_buffered: %d\n", fileStats.writeBuffered.Load())
	fmt.Fprintf(w, "filesystem.write_completed: %d\n", fileStats.writeCompleted.Load())
	fmt.Fprintf(w, "filesystem.write_failed: %d\n", fileStats.writeFailed.Load())
	fmt.Fprintf(w, "filesystem.write_total_buffered: %d\n", fileStats.totalBuffered.Load())
	fmt.Fprintf(w, "sluice.access_log.lines_dropped: %d\n", fileStats.linesDropped.Load())
}
