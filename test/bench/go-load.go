// The bench's second load generator, on another stack than ssh2's client: Go's golang.org/x/crypto/ssh client,
// doing what the bench's sessions do (connect, key exchange, password, a session with a shell, read to its end,
// close). Built by `npm run bench -- --versus-go` with the Go of the Debian testing root (.ci/today adds it).
//
//	go-load PORT KEX MODE N SESSIONS
//
// MODE `c`: N sessions at a time; MODE `rate`: a session started every 1/N s, whether the last has ended or not
// (at most 256 at once: a start that finds 256 under way is counted as late). Makes SESSIONS sessions, offering
// only the key exchange KEX, the host key ssh-ed25519 and the cipher aes128-gcm@openssh.com, then prints one JSON
// line: sessions, failed, late, elapsed (s), cpuMs (its own user + system time), p50 and p99 (ms).
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: go-load PORT KEX c|rate N SESSIONS")
		os.Exit(2)
	}
	address := "127.0.0.1:" + os.Args[1]
	// What ssh2's client agrees on with both servers: without it, Go's client, which ranks Ed25519 host keys last,
	// would make step 03 (which also has an RSA host key) sign every key exchange with RSA, at several times the cost.
	config := &ssh.ClientConfig{
		User:              "alice",
		Auth:              []ssh.AuthMethod{ssh.Password("wonderland")},
		HostKeyCallback:   ssh.InsecureIgnoreHostKey(),
		HostKeyAlgorithms: []string{ssh.KeyAlgoED25519},
		Config:            ssh.Config{KeyExchanges: []string{os.Args[2]}, Ciphers: []string{"aes128-gcm@openssh.com"}},
		Timeout:           10 * time.Second,
	}
	mode := os.Args[3]
	n, err := strconv.ParseFloat(os.Args[4], 64)
	check(err)
	total, err := strconv.Atoi(os.Args[5])
	check(err)

	var mutex sync.Mutex
	latencies := make([]float64, 0, total)
	failed, late := 0, 0
	one := func() {
		begun := time.Now()
		ok := session(address, config)
		mutex.Lock()
		defer mutex.Unlock()
		if ok {
			latencies = append(latencies, float64(time.Since(begun).Microseconds())/1000)
		} else {
			failed++
		}
	}

	var before syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &before))
	begun := time.Now()
	var group sync.WaitGroup
	if mode == "c" {
		next := make(chan struct{}, total)
		for i := 0; i < total; i++ {
			next <- struct{}{}
		}
		close(next)
		for lane := 0; lane < int(n); lane++ {
			group.Add(1)
			go func() {
				defer group.Done()
				for range next {
					one()
				}
			}()
		}
	} else {
		interval := time.Duration(float64(time.Second) / n)
		slots := make(chan struct{}, 256)
		for i := 0; i < total; i++ {
			// On schedule: the i-th start is due at begun + i * interval.
			if wait := time.Until(begun.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
			select {
			case slots <- struct{}{}:
				group.Add(1)
				go func() {
					defer group.Done()
					one()
					<-slots
				}()
			default:
				late++
			}
		}
	}
	group.Wait()
	elapsed := time.Since(begun).Seconds()
	var after syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &after))
	cpu := func(r syscall.Rusage) float64 {
		return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e6
	}
	sort.Float64s(latencies)
	at := func(q float64) float64 {
		if len(latencies) == 0 {
			return 0
		}
		i := int(q * float64(len(latencies)))
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return latencies[i]
	}
	report, err := json.Marshal(map[string]any{
		"sessions": len(latencies), "failed": failed, "late": late, "elapsed": elapsed,
		"cpuMs": cpu(after) - cpu(before), "p50": at(0.5), "p99": at(0.99),
	})
	check(err)
	fmt.Println(string(report))
}

// session makes one whole session; whether it went through.
func session(address string, config *ssh.ClientConfig) bool {
	client, err := ssh.Dial("tcp", address, config)
	if err != nil {
		return false
	}
	defer client.Close()
	channel, err := client.NewSession()
	if err != nil {
		return false
	}
	stdout, err := channel.StdoutPipe()
	if err != nil {
		return false
	}
	if err := channel.Shell(); err != nil {
		return false
	}
	// The server says its line and closes the channel (step 03 sends no exit status: Wait's error is expected).
	io.Copy(io.Discard, stdout)
	channel.Wait()
	return true
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-load:", err)
		os.Exit(1)
	}
}
