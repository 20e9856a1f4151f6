package brokertest

import (
	"flag"
	"strconv"
	"testing"
)

// Run runs the tests of m, for a TestMain, with up to parallel tests that
// call t.Parallel running at a time unless the command line sets
// -parallel, and returns m.Run's exit code:
//
//	func TestMain(m *testing.M) { os.Exit(brokertest.Run(m, 4)) }
//
// The flag's default, GOMAXPROCS, suits tests that compute. Broker tests
// that run in parallel mostly wait (on a private broker, a proxy, a
// timeout, a redelivery), so a 2-core machine ran two of them at a time
// with its cores mostly idle.
func Run(m *testing.M, parallel int) int {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set && parallel > 0 {
		if err := flag.Set("test.parallel", strconv.Itoa(parallel)); err != nil {
			panic("brokertest: " + err.Error())
		}
	}
	return m.Run()
}
