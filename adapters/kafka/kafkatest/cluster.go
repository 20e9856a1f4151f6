package kafkatest

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msgkit/messaging/integration/fault"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster is a private kfake cluster whose brokers are reached only
// through one Proxy each: the brokers advertise the proxies' addresses, so
// every client connection (metadata, produce, fetch, group coordination)
// can be cut. Its state lives in a data directory, so Kill and Start are a
// broker crash and restart on the same ports.
type Cluster struct {
	t       testing.TB
	dir     string
	inner   []int // ports the brokers listen on
	proxies []*fault.Proxy
	opts    []kfake.Opt
	c       *kfake.Cluster
}

// StartCluster starts a kfake cluster of n brokers (group sessions may be as
// short as 1s) with a proxy in front of each; opts are more kfake options.
func StartCluster(t testing.TB, n int, opts ...kfake.Opt) *Cluster {
	t.Helper()
	k := &Cluster{t: t, dir: t.TempDir()}
	for range n {
		port := fault.FreePort(t)
		k.inner = append(k.inner, port)
		k.proxies = append(k.proxies, fault.NewProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))))
	}
	k.opts = append([]kfake.Opt{
		kfake.NumBrokers(n),
		kfake.Ports(k.inner...),
		kfake.DataDir(k.dir),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.ListenFn(k.listen),
	}, opts...)
	k.Start()
	t.Cleanup(k.Kill)
	return k
}

// listen opens a broker's listener and makes it advertise its proxy.
func (k *Cluster) listen(network, address string) (net.Listener, error) {
	ln, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(address)
	for i, p := range k.inner {
		if strconv.Itoa(p) == port {
			addr, _ := net.ResolveTCPAddr("tcp", k.proxies[i].Addr())
			return advertised{ln, addr}, nil
		}
	}
	return ln, nil
}

type advertised struct {
	net.Listener
	addr net.Addr
}

func (a advertised) Addr() net.Addr { return a.addr }

// Brokers is the comma-separated bootstrap list (the proxies).
func (k *Cluster) Brokers() string {
	addrs := make([]string, len(k.proxies))
	for i, p := range k.proxies {
		addrs[i] = p.Addr()
	}
	return strings.Join(addrs, ",")
}

// Proxy is the proxy in front of broker i.
func (k *Cluster) Proxy(i int) *fault.Proxy { return k.proxies[i] }

// Cut cuts every broker's proxy; Restore undoes it.
func (k *Cluster) Cut() {
	for _, p := range k.proxies {
		p.Cut()
	}
}

// Restore restores every broker's proxy.
func (k *Cluster) Restore() {
	for _, p := range k.proxies {
		p.Restore()
	}
}

// CutFor cuts every broker off for d (the outage is the subject), then
// restores them.
func (k *Cluster) CutFor(d time.Duration) {
	k.Cut()
	time.Sleep(d)
	k.Restore()
}

// Cluster is the running kfake cluster (nil after Kill).
func (k *Cluster) Cluster() *kfake.Cluster { return k.c }

// Start starts the cluster (again, from its data directory, on the same
// ports).
func (k *Cluster) Start() {
	k.t.Helper()
	c, err := kfake.NewCluster(k.opts...)
	if err != nil {
		k.t.Fatalf("start kfake: %v", err)
	}
	k.c = c
}

// Kill stops every broker at once; what was written stays in the data
// directory. A no-op when the cluster is not running.
func (k *Cluster) Kill() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}
