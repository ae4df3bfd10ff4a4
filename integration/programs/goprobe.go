// A small Go program with several workloads of different kinds, for the static analysis of a Go binary
// (integration/test_generalise.py): files, hashing, a loopback HTTP exchange, goroutines and timers.
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func files(dir string) {
	must(os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, "a")
	must(os.WriteFile(p, []byte("hello\n"), 0o644))
	must(os.Rename(p, p+".b"))
	must(os.Symlink("a.b", filepath.Join(dir, "link")))
	_, err := os.Readlink(filepath.Join(dir, "link"))
	must(err)
	must(os.Chmod(p+".b", 0o600))
	must(os.Chtimes(p+".b", time.Unix(1, 0), time.Unix(1, 0)))
	entries, err := os.ReadDir(dir)
	must(err)
	must(os.RemoveAll(dir))
	fmt.Println(len(entries))
}

func hash(path string) {
	f, err := os.Open(path)
	must(err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	must(err)
	fmt.Printf("%x\n", h.Sum(nil))
}

func serve() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "pong") }))
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	must(err)
	body, err := io.ReadAll(resp.Body)
	must(err)
	fmt.Println(string(body))
}

func workers() {
	var wg sync.WaitGroup
	results := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			time.Sleep(time.Duration(n) * time.Millisecond)
			results <- n * n
		}(i)
	}
	wg.Wait()
	close(results)
	sum := 0
	for r := range results {
		sum += r
	}
	fmt.Println(sum)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goprobe files DIR | hash FILE | serve | workers")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "files":
		files(os.Args[2])
	case "hash":
		hash(os.Args[2])
	case "serve":
		serve()
	case "workers":
		workers()
	default:
		os.Exit(2)
	}
}
