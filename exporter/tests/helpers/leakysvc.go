// leakysvc: a small service that leaks on demand in a known function, for the
// capture tests and benchmarks. Standard library only (Go 1.19).
//
//	GET /leak?count=N&size=S  retains N new S-byte buffers in leakRequestBuffer
//	GET /work?size=S          allocates and drops a buffer (a service-like request)
//	/debug/pprof/heap         net/http/pprof's heap profile
//
// It prints its listening address on the first line of stdout.
package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
	"strconv"
	"sync"
)

// MemProfileRate: one sample every 2048 allocated bytes on average. The tests
// derive their tolerance from it (see exporter/tests/capture.rs).
func init() { runtime.MemProfileRate = 2048 }

// warmUp allocates and drops 16 MiB on the main goroutine. Each P keeps a
// distance to its next sample, drawn under the rate in force when it was drawn:
// at start-up, the default 512 KiB on average. Until that distance is used up
// the P samples nothing, so the first allocations after a rate change are
// under-counted (measured: 1.15 MB seen of a 2.05 MB first leak, then exact).
// The tests run this service with GOMAXPROCS=1, so the warm-up uses up the
// distance of the only P.
func warmUp() {
	// 128 KiB: past the size the compiler would put on the stack.
	for j := 0; j < 128; j++ {
		b := make([]byte, 128<<10)
		b[0] = 1
		sink += b[0]
	}
}

var (
	mu sync.Mutex
	// Preallocated so that retaining a buffer allocates nothing else.
	retained = make([][]byte, 0, 1<<20)
	sink     byte
)

//go:noinline
func leakRequestBuffer(size int) {
	b := make([]byte, size)
	b[0] = 1
	mu.Lock()
	retained = append(retained, b)
	mu.Unlock()
}

//go:noinline
func handleWork(size int) {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i)
	}
	sink += b[size/2]
}

func number(r *http.Request, key string, fallback int) int {
	n, err := strconv.Atoi(r.URL.Query().Get(key))
	if err != nil || n < 0 || n > 1<<24 {
		return fallback
	}
	return n
}

func main() {
	warmUp()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr().String())
	http.HandleFunc("/leak", func(w http.ResponseWriter, r *http.Request) {
		count, size := number(r, "count", 1), number(r, "size", 1024)
		for i := 0; i < count; i++ {
			leakRequestBuffer(size)
		}
		mu.Lock()
		n := len(retained)
		mu.Unlock()
		fmt.Fprintf(w, "%d\n", n)
	})
	http.HandleFunc("/work", func(w http.ResponseWriter, r *http.Request) {
		handleWork(number(r, "size", 64<<10))
		fmt.Fprintln(w, "ok")
	})
	fmt.Fprintln(os.Stderr, http.Serve(ln, nil))
}
