package jepsen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NamePrefix starts every network namespace, bridge and veth a run
// creates. The owner's pid follows it, which is how a later run recognises
// leftovers of a crashed one (the pid is no longer alive).
const NamePrefix = "ospj"

// Network is a Linux bridge with one network namespace per member (nodes,
// the client, MinIO), each with its own address on a /24 nobody else uses.
// The root namespace gets no address and no route: the bridge is a plain
// L2 switch, which is the rule DESIGN.md learned the hard way. Faults are
// iptables DROP rules inside the members' namespaces. Requires root.
type Network struct {
	prefix  string            // NamePrefix + pid
	bridge  string            // bridge interface in the root namespace
	subnet  netip.Prefix      // e.g. 10.213.7.0/24
	members []string          // member names in creation order
	ip      map[string]string // member -> address
	blocked map[[2]string]bool
}

// NetworkAvailable reports whether namespaces can be used here (root and
// iproute2 + iptables installed), and why not.
func NetworkAvailable() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "not running as root"
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, tool + " not installed (apt-get install iproute2 iptables)"
		}
	}
	return true, ""
}

// NewNetwork creates the bridge and one namespace per member. Members get
// addresses .2, .3, … in member order. The caller MUST Close, also on
// error paths after a successful return.
func NewNetwork(ctx context.Context, members []string) (*Network, error) {
	if ok, why := NetworkAvailable(); !ok {
		return nil, fmt.Errorf("jepsen: network namespaces unavailable: %s", why)
	}
	subnet, err := freeSubnet(ctx)
	if err != nil {
		return nil, err
	}
	n := &Network{
		prefix: fmt.Sprintf("%s%d", NamePrefix, os.Getpid()),
		subnet: subnet,
		ip:     map[string]string{},
	}
	n.bridge = n.prefix + "b"
	if err := n.setup(ctx, members); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Network) setup(ctx context.Context, members []string) error {
	if err := run(ctx, "ip", "link", "add", "name", n.bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := run(ctx, "ip", "link", "set", n.bridge, "up"); err != nil {
		return err
	}
	base := n.subnet.Addr().As4()
	for i, m := range members {
		ns := n.NS(m)
		veth := fmt.Sprintf("%sv%d", n.prefix, i)
		addr := base
		addr[3] = byte(2 + i)
		ip := netip.AddrFrom4(addr).String()
		n.members = append(n.members, m)
		n.ip[m] = ip
		steps := [][]string{
			{"ip", "netns", "add", ns},
			{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"ip", "link", "set", veth, "master", n.bridge, "up"},
			{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
			{"ip", "-n", ns, "link", "set", "eth0", "up"},
			// Traffic to a namespace's own address goes over lo.
			{"ip", "-n", ns, "link", "set", "lo", "up"},
		}
		for _, s := range steps {
			if err := run(ctx, s[0], s[1:]...); err != nil {
				return err
			}
		}
	}
	return nil
}

// NS returns the namespace name of a member.
func (n *Network) NS(member string) string { return n.prefix + "-" + member }

// IP returns the address of a member.
func (n *Network) IP(member string) string { return n.ip[member] }

// Subnet returns the run's subnet.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

// Command returns a command that runs argv inside member's namespace.
// `ip netns exec` execs in place, so the pid is the program's own and
// signals reach it directly.
func (n *Network) Command(member string, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.NS(member)}, argv...)...)
}

// Block drops all traffic between members a and b in both directions,
// with rules in both namespaces, so established connections stall too.
func (n *Network) Block(ctx context.Context, a, b string) error {
	return n.BlockPairs(ctx, [][2]string{{a, b}})
}

// BlockPairs blocks every pair at once: the rules of each namespace are
// loaded with one iptables-restore, so a partition takes effect in a few
// milliseconds rather than one exec per rule.
func (n *Network) BlockPairs(ctx context.Context, pairs [][2]string) error {
	rules := map[string][]string{}
	var order []string
	for _, p := range pairs {
		for _, d := range [][2]string{{p[0], p[1]}, {p[1], p[0]}} {
			if _, ok := rules[d[0]]; !ok {
				order = append(order, d[0])
			}
			peer := n.ip[d[1]]
			rules[d[0]] = append(rules[d[0]], "-A INPUT -s "+peer+" -j DROP", "-A OUTPUT -d "+peer+" -j DROP")
		}
	}
	for _, m := range order {
		input := "*filter\n" + strings.Join(rules[m], "\n") + "\nCOMMIT\n"
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", n.NS(m), "iptables-restore", "-w", "--noflush")
		cmd.Stdin = strings.NewReader(input)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("jepsen: iptables-restore in %s: %w: %s", n.NS(m), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// Heal removes every DROP rule in every namespace.
func (n *Network) Heal(ctx context.Context) error {
	var errs []error
	for _, m := range n.members {
		for _, chain := range []string{"INPUT", "OUTPUT"} {
			if err := run(ctx, "ip", "netns", "exec", n.NS(m), "iptables", "-w", "-F", chain); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// DialContext returns a dial function whose sockets live in member's
// namespace. Each dial runs on a fresh OS thread that enters the namespace
// with setns(2) and is never unlocked, so the runtime destroys the thread
// when the goroutine ends instead of reusing it in the wrong namespace. A
// socket keeps the namespace it was created in, so the connection can be
// used from any goroutine afterwards.
func (n *Network) DialContext(member string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := "/var/run/netns/" + n.NS(member)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // deliberately never unlocked
			if err := enterNetns(path); err != nil {
				ch <- result{nil, &net.OpError{Op: "dial", Net: network, Err: err}}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// Listen opens a TCP listener inside member's namespace (used by tests).
func (n *Network) Listen(member, addr string) (net.Listener, error) {
	path := "/var/run/netns/" + n.NS(member)
	type result struct {
		l   net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		if err := enterNetns(path); err != nil {
			ch <- result{nil, err}
			return
		}
		l, err := net.Listen("tcp", addr)
		ch <- result{l, err}
	}()
	r := <-ch
	return r.l, r.err
}

func enterNetns(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("jepsen: open netns: %w", err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("jepsen: setns %s: %w", path, err)
	}
	return nil
}

// Close kills whatever still runs in the namespaces, then deletes them and
// the bridge. It is idempotent and best-effort; it returns the first errors.
func (n *Network) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for _, m := range n.members {
		killNetnsPids(ctx, n.NS(m))
		if err := run(ctx, "ip", "netns", "del", n.NS(m)); err != nil {
			errs = append(errs, err)
		}
	}
	n.members = nil
	if n.bridge != "" && linkExists(ctx, n.bridge) {
		if err := run(ctx, "ip", "link", "del", n.bridge); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CleanLeftovers removes namespaces, veths and bridges of earlier runs
// whose owning process is gone. Resources of live runs are left alone. It
// returns what it removed.
func CleanLeftovers(ctx context.Context) ([]string, error) {
	if ok, _ := NetworkAvailable(); !ok {
		return nil, nil
	}
	var removed []string
	var errs []error
	out, err := output(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !deadOwner(f[0]) {
			continue
		}
		killNetnsPids(ctx, f[0])
		if err := run(ctx, "ip", "netns", "del", f[0]); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "netns "+f[0])
	}
	out, err = output(ctx, "ip", "-o", "link", "show")
	if err != nil {
		return removed, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if i := strings.IndexByte(name, '@'); i >= 0 {
			name = name[:i]
		}
		if !deadOwner(name) {
			continue
		}
		if err := run(ctx, "ip", "link", "del", name); err != nil && linkExists(ctx, name) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "link "+name)
	}
	return removed, errors.Join(errs...)
}

// deadOwner reports whether name is one of ours and its owner pid is gone.
func deadOwner(name string) bool {
	if !strings.HasPrefix(name, NamePrefix) {
		return false
	}
	digits := strings.TrimPrefix(name, NamePrefix)
	end := 0
	for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
		end++
	}
	pid, err := strconv.Atoi(digits[:end])
	if err != nil || pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

func killNetnsPids(ctx context.Context, ns string) {
	out, err := output(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func linkExists(ctx context.Context, name string) bool {
	return exec.CommandContext(ctx, "ip", "link", "show", name).Run() == nil
}

// freeSubnet picks a 10.x.y.0/24 that overlaps no route or address the
// host already has (the host's network may sit anywhere, so nothing is
// assumed free).
func freeSubnet(ctx context.Context) (netip.Prefix, error) {
	var used []netip.Prefix
	for _, args := range [][]string{{"-4", "route", "show", "table", "all"}, {"-4", "-o", "addr", "show"}} {
		out, err := output(ctx, "ip", args...)
		if err != nil {
			return netip.Prefix{}, err
		}
		used = append(used, parsePrefixes(out)...)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for try := 0; try < 1000; try++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(200 + rng.IntN(54)), byte(rng.IntN(256)), 0}), 24)
		if !overlapsAny(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("jepsen: no free 10.x.y.0/24 subnet")
}

// parsePrefixes extracts every IPv4 address or prefix in `ip` output,
// except the default route.
func parsePrefixes(out string) []netip.Prefix {
	var ps []netip.Prefix
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		for _, tok := range strings.Fields(sc.Text()) {
			if p, err := netip.ParsePrefix(tok); err == nil && p.Addr().Is4() {
				if p.Bits() > 0 {
					ps = append(ps, p.Masked())
				}
				continue
			}
			if a, err := netip.ParseAddr(tok); err == nil && a.Is4() {
				ps = append(ps, netip.PrefixFrom(a, 32))
			}
		}
	}
	return ps
}

func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

func run(ctx context.Context, name string, args ...string) error {
	_, err := output(ctx, name, args...)
	return err
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("jepsen: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// sortedMembers is a helper for deterministic output.
func sortedMembers(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
