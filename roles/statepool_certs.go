package roles

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/gridha/gridha/installer"
	"github.com/gridha/gridha/installer/steps"
	"github.com/gridha/gridha/inventory"
)

// The state pool's TLS (GlusterFS I/O and management paths). gridha is the
// pool's certificate authority: the CA and every host's key and certificate
// are made on the admin machine, in secrets_dir/glusterfs/, the first time
// an install needs them (install state-server or rb-node, in either order),
// like the snfs keys. A host's certificate names it in its CN, and the
// volume's auth.ssl-allow lists exactly the CNs of the inventory's pool
// members and rb nodes: a certificate of another CA cannot connect at all,
// one of this CA for a host gridha no longer lists is refused by the bricks.
//
// On a host the files are /etc/ssl/glusterfs.{pem,key,ca} (the volume's
// ssl.own-cert, ssl.private-key and ssl.ca-list name them). GlusterFS's
// management connections (glusterd to glusterd, a client fetching its
// volume file) have no such options: they read the paths compiled in,
// /usr/lib/ssl/glusterfs.* on Debian, so those are symlinks to the files in
// /etc/ssl (as Debian links /usr/lib/ssl/certs there).
const (
	GlusterCertPath   = "/etc/ssl/glusterfs.pem"
	GlusterKeyPath    = "/etc/ssl/glusterfs.key"
	GlusterCAPath     = "/etc/ssl/glusterfs.ca"
	glusterDefaultSSL = "/usr/lib/ssl"
	// GlusterSecureAccess turns TLS on for the management path (glusterd,
	// volume-file fetches) of the host that has it.
	GlusterSecureAccess = "/var/lib/glusterd/secure-access"
)

// certWarnAhead is how long before its end a certificate is reported.
const certWarnAhead = 30 * 24 * time.Hour

// PoolTLS is the pool's CA and one host's key and certificate (PEM).
type PoolTLS struct {
	Host    string
	CN      string
	CAPEM   []byte
	CertPEM []byte
	KeyPEM  []byte // secret
}

func glusterSecrets(inv *inventory.Inventory) string {
	return filepath.Join(inv.SecretsDir, "glusterfs")
}

// GlusterCN is the name a host's certificate carries (its CN) and that
// auth.ssl-allow lists: the host's name as the others know it.
func GlusterCN(h *inventory.Host) string {
	if h.Hostname != "" {
		return h.Hostname
	}
	return h.Name
}

// LoadPoolTLS returns host's TLS material; missing parts are made when create
// is true (else the error wraps fs.ErrNotExist). A certificate whose CN is
// not the host's any more, or that the CA did not sign, is replaced.
func LoadPoolTLS(inv *inventory.Inventory, h *inventory.Host, create bool) (*PoolTLS, error) {
	ca, caKey, err := loadPoolCA(inv, create)
	if err != nil {
		return nil, err
	}
	dir := glusterSecrets(inv)
	certPath, keyPath := filepath.Join(dir, h.Name+".pem"), filepath.Join(dir, h.Name+".key")
	cn := GlusterCN(h)
	days := inv.Roles.StateServer.Pool.CertDays
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := inventory.ReadPrivateFile(keyPath)
	if kerr != nil && !errors.Is(kerr, fs.ErrNotExist) {
		return nil, fmt.Errorf("TLS key of %s: %w", h.Name, kerr)
	}
	if cerr == nil && kerr == nil {
		if c, err := parseCertPEM(certPEM); err == nil && c.Subject.CommonName == cn && c.CheckSignatureFrom(ca) == nil {
			return &PoolTLS{Host: h.Name, CN: cn, CAPEM: pemCert(ca.Raw), CertPEM: certPEM, KeyPEM: keyPEM}, nil
		}
	}
	if !create {
		return nil, fmt.Errorf("TLS certificate of %s (%s): %w", h.Name, certPath, fs.ErrNotExist)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"gridha state pool"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Duration(days) * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Every host is both: a brick serves, the same host's glusterd
		// connects to its peers.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{cn},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate of %s: %w", h.Name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM = pemCert(der)
	if err := writeSecretFile(dir, keyPath, keyPEM); err != nil {
		return nil, fmt.Errorf("TLS key of %s: %w", h.Name, err)
	}
	if err := writeSecretFile(dir, certPath, certPEM); err != nil {
		return nil, fmt.Errorf("TLS certificate of %s: %w", h.Name, err)
	}
	return &PoolTLS{Host: h.Name, CN: cn, CAPEM: pemCert(ca.Raw), CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// loadPoolCA reads (or, with create, makes) the pool's CA.
func loadPoolCA(inv *inventory.Inventory, create bool) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	dir := glusterSecrets(inv)
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := inventory.ReadPrivateFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		c, err := parseCertPEM(certPEM)
		if err != nil {
			return nil, nil, fmt.Errorf("pool CA %s: %w", certPath, err)
		}
		b, _ := pem.Decode(keyPEM)
		if b == nil {
			return nil, nil, fmt.Errorf("pool CA key %s: no PEM block", keyPath)
		}
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("pool CA key %s: %w", keyPath, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("pool CA key %s: not an ECDSA key", keyPath)
		}
		return c, ek, nil
	case cerr == nil || kerr == nil:
		// Half a CA: never overwrite the half that is there.
		return nil, nil, fmt.Errorf("pool CA: %s and %s must both exist (one is missing: restore it, or remove both to make a new CA and new certificates)", certPath, keyPath)
	case !errors.Is(cerr, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("pool CA: %w", cerr)
	case !errors.Is(kerr, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("pool CA: %w", kerr)
	case !create:
		return nil, nil, fmt.Errorf("pool CA (%s): %w", certPath, fs.ErrNotExist)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	// The CA outlives the host certificates it signs (renewed by removing
	// them); ten years.
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "gridha state pool CA", Organization: []string{"gridha state pool"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(3650 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	if err := writeSecretFile(dir, keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})); err != nil {
		return nil, nil, fmt.Errorf("pool CA key: %w", err)
	}
	if err := writeSecretFile(dir, certPath, pemCert(der)); err != nil {
		return nil, nil, fmt.Errorf("pool CA: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseCertPEM(data []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

// glusterTLSSteps install a host's TLS files (pool member or rb node) and
// turn management-path TLS on. With read-only planning and no certificate
// made yet, the steps say so.
func glusterTLSSteps(inv *inventory.Inventory, h *inventory.Host, opts Options) ([]installer.Step, error) {
	t, err := LoadPoolTLS(inv, h, !opts.ReadOnly)
	if err != nil {
		if opts.ReadOnly && errors.Is(err, fs.ErrNotExist) {
			return []installer.Step{steps.Pending{Name: "file " + GlusterCertPath, Why: "no TLS certificate made for " + h.Name + " yet (install state-server or rb-node makes it)"}}, nil
		}
		return nil, err
	}
	out := []installer.Step{
		&steps.File{Path: GlusterCAPath, Content: t.CAPEM, Mode: 0o644, Owner: "root", Group: "root"},
		&steps.File{Path: GlusterCertPath, Content: t.CertPEM, Mode: 0o644, Owner: "root", Group: "root"},
		&steps.File{Path: GlusterKeyPath, Content: t.KeyPEM, Mode: 0o600, Owner: "root", Group: "root", Secret: true},
	}
	for _, p := range []string{GlusterCertPath, GlusterKeyPath, GlusterCAPath} {
		out = append(out, &steps.Symlink{Path: glusterDefaultSSL + "/" + filepath.Base(p), Target: p})
	}
	out = append(out,
		&steps.Dir{Path: "/var/lib/glusterd", Mode: 0o755, Owner: "root", Group: "root"},
		// Our CA signs the hosts' certificates itself: depth 1.
		&steps.File{Path: GlusterSecureAccess, Content: []byte("option transport.socket.ssl-cert-depth 1\n"), Mode: 0o644, Owner: "root", Group: "root"},
		&certExpiry{Path: GlusterCertPath, What: "TLS certificate of " + h.Name},
		&certExpiry{Path: GlusterCAPath, What: "pool CA"},
	)
	return out, nil
}

// certExpiry reports when the certificate at Path (on the host) ends:
// drift (WARNING) within 30 days, failed once it has ended.
type certExpiry struct {
	Path, What string
}

func (c *certExpiry) ID() string { return "certificate expiry " + c.Path }
func (c *certExpiry) Probes() []installer.Probe {
	return []installer.Probe{installer.FileProbe(c.Path)}
}
func (c *certExpiry) CheckApply(ctx context.Context, env *installer.Env, apply bool) installer.Result {
	ff, err := env.Facts.File(c.Path)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.ID(), err))
	}
	if !ff.Exists {
		if apply {
			// Written by an earlier step of this phase: read it again.
			if err := env.Reprobe(ctx, c.Probes()...); err != nil {
				return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.ID(), err))
			}
			if ff, err = env.Facts.File(c.Path); err != nil || !ff.Exists {
				return installer.Failed(fmt.Errorf("%s: %s: %s missing", env.Host, c.ID(), c.Path))
			}
		} else {
			return installer.Missing(c.Path + " missing")
		}
	}
	cert, err := parseCertPEM(ff.Content)
	if err != nil {
		return installer.Failed(fmt.Errorf("%s: %s: %w", env.Host, c.Path, err))
	}
	return certExpiryResult(c.What, cert.Subject.CommonName, cert.NotAfter, time.Now())
}

// certExpiryResult is the report of a certificate ending at end, seen at now.
func certExpiryResult(what, cn string, end, now time.Time) installer.Result {
	left := end.Sub(now)
	days := int(left.Hours() / 24)
	msg := fmt.Sprintf("%s (CN=%s) valid until %s (%d days)", what, cn, end.UTC().Format("2006-01-02"), days)
	switch {
	case left <= 0:
		return installer.Failed(fmt.Errorf("%s (CN=%s) expired on %s: remove its files from the secrets folder's glusterfs/ and run install again", what, cn, end.UTC().Format("2006-01-02")))
	case left < certWarnAhead:
		return installer.Drift("WARNING: "+msg+": renew it (remove its files from the secrets folder's glusterfs/ and run install)", "more than 30 days left", fmt.Sprintf("%d days", days))
	}
	return installer.OK(msg)
}
