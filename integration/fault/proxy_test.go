package fault_test

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
)

// echoServer echoes lines back until the test ends.
func echoServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					if _, err := c.Write(append(sc.Bytes(), '\n')); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func roundTrip(c net.Conn) (time.Duration, error) {
	begin := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		return 0, err
	}
	return time.Since(begin), err
}

// TestProxyCutRefuseDelay: a cut ends the open connection and refuses new
// ones until Restore; Refuse keeps open connections; SetDelay adds latency.
func TestProxyCutRefuseDelay(t *testing.T) {
	p := fault.NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := roundTrip(c); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.Cut()
	if _, err := roundTrip(c); err == nil {
		t.Fatal("connection still works after Cut")
	}
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		c2.Close()
		t.Fatal("new connection accepted during the cut")
	}
	p.Restore()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatalf("after Restore: %v", err)
	}
	defer c3.Close()
	if _, err := roundTrip(c3); err != nil {
		t.Fatalf("after Restore: %v", err)
	}

	p.Refuse()
	if _, err := roundTrip(c3); err != nil {
		t.Fatalf("open connection broken by Refuse: %v", err)
	}
	if c4, err := net.Dial("tcp", p.Addr()); err == nil {
		c4.Close()
		t.Fatal("new connection accepted while refusing")
	}
	p.Restore()

	const delay = 100 * time.Millisecond
	p.SetDelay(delay)
	took, err := roundTrip(c3)
	if err != nil {
		t.Fatal(err)
	}
	if took < 2*delay { // delayed on the way there and back
		t.Errorf("round trip took %v with a %v delay each way", took, delay)
	}
	if p.Accepted() != 2 {
		t.Errorf("accepted %d connections, want 2", p.Accepted())
	}
}

// TestProxyLatency: with SetLatency, two lines written half a latency
// apart come back each about two latencies after it was written (there
// and back), the second not held up by the first as with SetDelay.
func TestProxyLatency(t *testing.T) {
	p := fault.NewProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const latency = 400 * time.Millisecond
	p.SetLatency(latency)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var sent [2]time.Time
	for i := range sent {
		if i > 0 {
			time.Sleep(latency / 2) // the writes' spacing is the subject
		}
		sent[i] = time.Now()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range sent {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		// (SetDelay would bring the second back after 2.5 latencies.)
		if took := time.Since(sent[i]); took < 2*latency || took > 2*latency+latency/4 {
			t.Errorf("line %d came back after %v, want about %v", i, took.Round(time.Millisecond), 2*latency)
		}
	}
}
