package testbed

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkUp measures bringing up (sshd answering on every host) and
// tearing down beds of 1, 5 and 20 hosts: go test -run - -bench Up ./testbed
func BenchmarkUp(b *testing.B) {
	Require(b)
	for _, n := range []int{1, 5, 20} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			hosts := make([]string, n)
			for i := range hosts {
				hosts[i] = fmt.Sprintf("h%d", i+1)
			}
			var up, down time.Duration
			for b.Loop() {
				ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
				start := time.Now()
				bed, err := Up(ctx, Options{Hosts: hosts})
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				up += time.Since(start)
				start = time.Now()
				if err := bed.Down(); err != nil {
					b.Fatal(err)
				}
				down += time.Since(start)
			}
			b.ReportMetric(up.Seconds()/float64(b.N), "s-up/op")
			b.ReportMetric(down.Seconds()/float64(b.N), "s-down/op")
		})
	}
}
