package hagd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Packet is one received datagram.
type Packet struct {
	Data []byte
	From net.Addr
}

// Transport carries heartbeats. The daemon uses UDP broadcasts; tests may
// plug in something else.
type Transport interface {
	// Send broadcasts p on every interface; an error says which failed.
	Send(p []byte) error
	// Packets delivers what arrives until Close.
	Packets() <-chan Packet
	Close() error
}

// UDPTransport broadcasts to the broadcast address of every IPv4 network of
// the chosen interfaces, with one socket per interface bound to it
// (SO_BINDTODEVICE), so that only those interfaces are heard.
type UDPTransport struct {
	port   int
	socks  []*ifaceSock
	ch     chan Packet
	wg     sync.WaitGroup
	closed chan struct{}
}

type ifaceSock struct {
	name string
	conn *net.UDPConn
}

// DefaultIfaces lists the interfaces that are up, not loopback and have an
// IPv4 address (slide 13: "all active interfaces excluding loopback").
func DefaultIfaces() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		if len(broadcastAddrs(&i)) > 0 {
			out = append(out, i.Name)
		}
	}
	return out, nil
}

func broadcastAddrs(i *net.Interface) []net.IP {
	addrs, err := i.Addrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip4 := n.IP.To4()
		if ip4 == nil || len(n.Mask) != net.IPv4len {
			continue
		}
		if ones, _ := n.Mask.Size(); ones >= 31 {
			continue
		}
		b := make(net.IP, net.IPv4len)
		for k := range b {
			b[k] = ip4[k] | ^n.Mask[k]
		}
		out = append(out, b)
	}
	return out
}

// OpenUDP opens the sockets (ifaces empty: DefaultIfaces).
func OpenUDP(ctx context.Context, port int, ifaces []string) (*UDPTransport, error) {
	if len(ifaces) == 0 {
		var err error
		if ifaces, err = DefaultIfaces(); err != nil {
			return nil, err
		}
		if len(ifaces) == 0 {
			return nil, errors.New("no interface is up with an IPv4 address (set iface)")
		}
	}
	t := &UDPTransport{port: port, ch: make(chan Packet, 256), closed: make(chan struct{})}
	for _, name := range ifaces {
		if _, err := net.InterfaceByName(name); err != nil {
			t.Close()
			return nil, fmt.Errorf("iface %s: %w", name, err)
		}
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
					return
				}
				if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
					return
				}
				serr = unix.BindToDevice(int(fd), name)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		pc, err := lc.ListenPacket(ctx, "udp4", fmt.Sprintf(":%d", port))
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("iface %s: listen udp %d: %w", name, port, err)
		}
		s := &ifaceSock{name: name, conn: pc.(*net.UDPConn)}
		t.socks = append(t.socks, s)
		t.wg.Add(1)
		go t.read(s)
	}
	return t, nil
}

func (t *UDPTransport) read(s *ifaceSock) {
	defer t.wg.Done()
	buf := make([]byte, MaxPacket+1)
	for {
		n, from, err := s.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p := Packet{Data: append([]byte(nil), buf[:n]...), From: from}
		select {
		case t.ch <- p:
		case <-t.closed:
			return
		default: // the daemon is behind: drop, heartbeats repeat
		}
	}
}

// Ifaces names the interfaces in use.
func (t *UDPTransport) Ifaces() []string {
	var out []string
	for _, s := range t.socks {
		out = append(out, s.name)
	}
	return out
}

// Send implements Transport. The broadcast addresses are looked up each
// time, so an interface that lost and regained its address works again.
func (t *UDPTransport) Send(p []byte) error {
	var errs []error
	for _, s := range t.socks {
		i, err := net.InterfaceByName(s.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			continue
		}
		bs := broadcastAddrs(i)
		if len(bs) == 0 {
			errs = append(errs, fmt.Errorf("%s: no IPv4 broadcast address", s.name))
		}
		for _, b := range bs {
			if _, err := s.conn.WriteToUDP(p, &net.UDPAddr{IP: b, Port: t.port}); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Packets implements Transport.
func (t *UDPTransport) Packets() <-chan Packet { return t.ch }

// Close implements Transport.
func (t *UDPTransport) Close() error {
	select {
	case <-t.closed:
		return nil
	default:
	}
	close(t.closed)
	for _, s := range t.socks {
		s.conn.Close()
	}
	t.wg.Wait()
	return nil
}
