// The Go anchor of `npm run bench`: a golang.org/x/crypto/ssh client (the seed's own language)
// measured in the same run as the engine. Built offline by bench/go-client.ts from Debian's
// golang-go and golang-golang-x-crypto-dev (GOPATH mode, GOPATH=/usr/share/gocode).
//
// One long-lived process, like a Go service running many sessions: it reads one JSON request
// per line on stdin, runs `n` sessions of `cmd` at once (connect → auth → exec → exit →
// close, each on its own TCP connection), and answers one JSON line on stdout with each
// session's time, the process's CPU (getrusage, every thread) over the request, and the
// stdout bytes each session drained (discarded, counted). The bench interleaves requests with
// its other clients, so drift hits every client alike.
//
//	sshclient -addr 127.0.0.1:PORT -user USER -key PRIVATE_KEY_FILE -hostkey 'ssh-ed25519 AAAA…'
//	stdin:  {"n":1,"cmd":"true"}
//	stdout: {"ms":[31.2],"bytes":[0],"wallMs":31.4,"cpuMs":2.1,"failures":[]}
//
// Settings as a careful Go service would use them: publickey auth only, the host key pinned,
// TCP_NODELAY (Go's default on TCP), x/crypto's default algorithm preferences, a 60 s dial
// timeout. Nothing else is tuned.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

type request struct {
	N   int    `json:"n"`
	Cmd string `json:"cmd"`
}

type response struct {
	Ms       []float64 `json:"ms"`
	Bytes    []int64   `json:"bytes"`
	WallMs   float64   `json:"wallMs"`
	CPUMs    float64   `json:"cpuMs"`
	Failures []string  `json:"failures"`
}

// countingDiscard drops what it is given and counts it.
type countingDiscard struct{ n int64 }

func (c *countingDiscard) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

func cpuMs() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec)*1e3 + float64(t.Usec)/1e3 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func session(addr string, cfg *ssh.ClientConfig, cmd string) (float64, int64, error) {
	t0 := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 60*time.Second)
	if err != nil {
		return 0, 0, fmt.Errorf("dial: %w", err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return 0, 0, fmt.Errorf("handshake: %w", err)
	}
	client := ssh.NewClient(c, chans, reqs)
	s, err := client.NewSession()
	if err != nil {
		client.Close()
		return 0, 0, fmt.Errorf("session: %w", err)
	}
	out := &countingDiscard{}
	s.Stdout = out
	s.Stderr = io.Discard
	runErr := s.Run(cmd)
	s.Close()
	client.Close()
	elapsed := float64(time.Since(t0).Nanoseconds()) / 1e6
	if runErr != nil {
		return 0, out.n, fmt.Errorf("run: %w", runErr)
	}
	return elapsed, out.n, nil
}

func main() {
	addr := flag.String("addr", "", "host:port of the SSH server")
	user := flag.String("user", "", "user to log in as")
	keyFile := flag.String("key", "", "private key file (OpenSSH format)")
	hostKey := flag.String("hostkey", "", "the server's host key line (`ssh-ed25519 AAAA…`)")
	flag.Parse()
	if *addr == "" || *user == "" || *keyFile == "" || *hostKey == "" {
		fmt.Fprintln(os.Stderr, "sshclient: -addr, -user, -key and -hostkey are all required")
		os.Exit(2)
	}
	pem, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sshclient: reading -key: %v\n", err)
		os.Exit(2)
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sshclient: parsing -key: %v\n", err)
		os.Exit(2)
	}
	pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*hostKey))
	if err != nil {
		fmt.Fprintf(os.Stderr, "sshclient: parsing -hostkey: %v\n", err)
		os.Exit(2)
	}
	cfg := &ssh.ClientConfig{
		User:            *user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(pinned),
		Timeout:         60 * time.Second,
	}

	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil || req.N < 1 || req.Cmd == "" {
			fmt.Fprintf(os.Stderr, "sshclient: bad request %q: want {\"n\":N>=1,\"cmd\":\"…\"}\n", in.Text())
			os.Exit(2)
		}
		res := response{Ms: []float64{}, Bytes: []int64{}, Failures: []string{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		cpu0 := cpuMs()
		t0 := time.Now()
		for i := 0; i < req.N; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ms, n, err := session(*addr, cfg, req.Cmd)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.Failures = append(res.Failures, err.Error())
					return
				}
				res.Ms = append(res.Ms, ms)
				res.Bytes = append(res.Bytes, n)
			}()
		}
		wg.Wait()
		res.WallMs = float64(time.Since(t0).Nanoseconds()) / 1e6
		res.CPUMs = cpuMs() - cpu0
		if err := enc.Encode(&res); err != nil {
			os.Exit(1)
		}
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
}
