// The bench's Go server: what step 03 does (a password, then a session that says one line and closes), and step
// 09's key login, on golang.org/x/crypto/ssh, the engine under gliderlabs/ssh, wish and soft-serve. Built by
// `npm run bench` when Go is there (Debian: golang-go and golang-golang-x-crypto-dev, in GOPATH mode).
//
//	go-server HOST_KEY AUTHORIZED_KEY
//
// listens on 127.0.0.1 on a free port and prints `listening on 127.0.0.1:PORT`, as the steps do.
package main

import (
	"bytes"
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
)

func main() {
	hostKey, err := os.ReadFile(os.Args[1])
	check(err)
	signer, err := ssh.ParsePrivateKey(hostKey)
	check(err)
	authorized, err := os.ReadFile(os.Args[2])
	check(err)
	allowed, _, _, _, err := ssh.ParseAuthorizedKey(authorized)
	check(err)
	config := &ssh.ServerConfig{
		PasswordCallback: func(meta ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			if meta.User() == "alice" && string(password) == "wonderland" {
				return nil, nil
			}
			return nil, fmt.Errorf("password refused for %s", meta.User())
		},
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == "alice" && bytes.Equal(key.Marshal(), allowed.Marshal()) {
				return nil, nil
			}
			return nil, fmt.Errorf("key refused for %s", meta.User())
		},
	}
	config.AddHostKey(signer)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	fmt.Printf("listening on %s\n", listener.Addr())
	for {
		socket, err := listener.Accept()
		if err != nil {
			continue
		}
		socket.(*net.TCPConn).SetNoDelay(true)
		go serve(socket, config)
	}
}

// serve runs one connection: each session channel that asks for a shell gets step 03's line, and is closed.
func serve(socket net.Conn, config *ssh.ServerConfig) {
	connection, channels, requests, err := ssh.NewServerConn(socket, config)
	if err != nil {
		socket.Close()
		return
	}
	defer connection.Close()
	go ssh.DiscardRequests(requests)
	for newChannel := range channels {
		if newChannel.ChannelType() != "session" {
			newChannel.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		channel, channelRequests, err := newChannel.Accept()
		if err != nil {
			continue
		}
		go func() {
			for request := range channelRequests {
				request.Reply(request.Type == "shell", nil)
				if request.Type == "shell" {
					channel.Write([]byte("This session is very simple. Goodbye!\r\n"))
					channel.Close()
				}
			}
		}()
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-server:", err)
		os.Exit(1)
	}
}
