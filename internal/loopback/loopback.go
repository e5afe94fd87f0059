// Package loopback hands out what tests and measurement scripts need to serve on 127.0.0.1.
package loopback

import "net"

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a process started
// next that must be told its port before it listens.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
