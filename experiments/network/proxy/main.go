// Command lab-toxiproxy is Toxiproxy's server with one toxic added, "latency_us": a delay
// with microsecond resolution. Toxiproxy's own latency toxic counts whole milliseconds, so
// it cannot take back what the proxy itself adds (its hop, and Go's timers, which wait
// for the network poller in whole milliseconds): measured here, 1 and 5 ms links came out
// 0.2-0.8 ms long. This toxic sleeps with nanosleep instead of a Go timer. The lab's calibration (experiments/network/calibrate.py) measures each
// link and sets this toxic to the asked round trip minus that excess.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
)

// MicroLatency holds every chunk until latency_us (+- a uniform jitter_us) after the
// proxy read it, so time already spent in the proxy counts towards the delay.
type MicroLatency struct {
	LatencyUs int64 `json:"latency_us"`
	JitterUs  int64 `json:"jitter_us"`
}

func (t *MicroLatency) GetBufferSize() int { return 1024 }

func (t *MicroLatency) delay() time.Duration {
	us := t.LatencyUs
	if t.JitterUs > 0 {
		us += rand.Int63n(2*t.JitterUs+1) - t.JitterUs // symmetric: the mean stays latency_us
	}
	return time.Duration(us) * time.Microsecond
}

func (t *MicroLatency) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case chunk := <-stub.Input:
			if chunk == nil {
				stub.Close()
				return
			}
			due := chunk.Timestamp.Add(t.delay())
			if sleepUntil(due) {
				chunk.Timestamp = due
			}
			stub.Output <- chunk
		}
	}
}

// sleepUntil blocks this goroutine's thread in nanosleep until `due`; whether it waited.
// Not a Go timer: those fire when the runtime's network poller wakes, and it waits in
// whole milliseconds (runtime/netpoll_epoll.go), so any wait under 1 ms took 1 ms or more
// and a 500 us direction could not be asked for. nanosleep is late by about 70 us here.
// The goroutine cannot be interrupted while it sleeps: a toxic removed or a link closed
// meanwhile is noticed after this chunk, at most one delay later.
func sleepUntil(due time.Time) bool {
	waited := false
	for {
		wait := time.Until(due)
		if wait <= 0 {
			return waited
		}
		ts := syscall.NsecToTimespec(int64(wait))
		_ = syscall.Nanosleep(&ts, nil) // interrupted by a signal: the loop sleeps the rest
		waited = true
	}
}

func main() {
	host := flag.String("host", "localhost", "address the API listens on")
	port := flag.String("port", "8474", "port the API listens on")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("toxiproxy-server version %s\n", toxiproxy.Version)
		return
	}
	toxics.Register("latency_us", new(MicroLatency))

	level, err := zerolog.ParseLevel(os.Getenv("LOG_LEVEL"))
	if err != nil || os.Getenv("LOG_LEVEL") == "" {
		level = zerolog.InfoLevel
	}
	logger := zerolog.New(os.Stderr).Level(level).With().Timestamp().Logger()

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		os.Exit(0)
	}()

	server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), logger)
	server.Listen(*host, *port)
}
