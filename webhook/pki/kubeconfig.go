package pki

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Names inside the kubeconfig written by WriteKubeconfig.
const (
	kubeconfigCluster = "oidc-authenticator"
	kubeconfigUser    = "kube-apiserver"
	kubeconfigContext = "webhook"
)

// WriteKubeconfig writes f.Kubeconfig(), the kubeconfig kube-apiserver reads
// through --authentication-token-webhook-config-file. It holds one cluster
// "oidc-authenticator" whose server is serverURL (for example
// https://127.0.0.1:21362/authenticate) and whose certificate authority is
// the CA certificate; one user "kube-apiserver" with the client certificate
// and key embedded; and one context "webhook", selected as current context.
//
// The file is written atomically with mode 0600 because it contains a key.
// An existing kubeconfig is replaced: everything in it is derived from the
// other files of the state directory.
func WriteKubeconfig(f Files, serverURL string) error {
	_, err := EnsureKubeconfig(f, serverURL)
	return err
}

// KubeconfigOutcome says what EnsureKubeconfig did.
type KubeconfigOutcome string

// What EnsureKubeconfig did with the kubeconfig file.
const (
	KubeconfigCreated KubeconfigOutcome = "created" // there was none
	KubeconfigUpdated KubeconfigOutcome = "updated" // it said something else, and was replaced
	KubeconfigKept    KubeconfigOutcome = "kept"    // it already said exactly this, and was left alone
)

// EnsureKubeconfig is WriteKubeconfig that leaves the file alone (not even
// rewritten, so its modification time stays) when it already holds exactly
// what would be written, and says which it did. A file that differs is
// replaced, mode 0600.
func EnsureKubeconfig(f Files, serverURL string) (KubeconfigOutcome, error) {
	data, err := kubeconfigData(f, serverURL)
	if err != nil {
		return "", err
	}
	outcome := KubeconfigCreated
	old, err := os.ReadFile(f.Kubeconfig())
	switch {
	case err == nil:
		if st, statErr := os.Stat(f.Kubeconfig()); statErr == nil && bytes.Equal(old, data) && st.Mode().Perm() == keyMode {
			return KubeconfigKept, nil
		}
		outcome = KubeconfigUpdated
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("read kubeconfig %s: %w", f.Kubeconfig(), err)
	}
	if err := writeFileAtomic(f.Kubeconfig(), data, keyMode, true); err != nil {
		return "", err
	}
	return outcome, nil
}

// kubeconfigData returns the kubeconfig WriteKubeconfig writes.
func kubeconfigData(f Files, serverURL string) ([]byte, error) {
	if err := checkServerURL(serverURL); err != nil {
		return nil, err
	}

	caPEM, err := os.ReadFile(f.CACert())
	if err != nil {
		return nil, fmt.Errorf("read CA certificate %s: %w", f.CACert(), err)
	}
	ca, err := parseCertificate(caPEM)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate %s: %w", f.CACert(), err)
	}
	certPEM, err := os.ReadFile(f.ClientCert())
	if err != nil {
		return nil, fmt.Errorf("read client certificate %s: %w", f.ClientCert(), err)
	}
	keyPEM, err := os.ReadFile(f.ClientKey())
	if err != nil {
		return nil, fmt.Errorf("read client key %s: %w", f.ClientKey(), err)
	}
	// Catch a broken pair here rather than in kube-apiserver's log.
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("client certificate %s and key %s are not a usable pair: %w",
			f.ClientCert(), f.ClientKey(), err)
	}
	clientCert, err := parseCertificate(certPEM)
	if err != nil {
		return nil, fmt.Errorf("read client certificate %s: %w", f.ClientCert(), err)
	}
	if err := clientCert.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("client certificate %s was not issued by the CA in %s: %w",
			f.ClientCert(), f.CACert(), err)
	}

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeconfigCluster] = &clientcmdapi.Cluster{
		Server:                   serverURL,
		CertificateAuthorityData: caPEM,
	}
	cfg.AuthInfos[kubeconfigUser] = &clientcmdapi.AuthInfo{
		ClientCertificateData: certPEM,
		ClientKeyData:         keyPEM,
	}
	cfg.Contexts[kubeconfigContext] = &clientcmdapi.Context{
		Cluster:  kubeconfigCluster,
		AuthInfo: kubeconfigUser,
	}
	cfg.CurrentContext = kubeconfigContext

	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("encode kubeconfig %s: %w", f.Kubeconfig(), err)
	}
	return data, nil
}

// checkServerURL rejects a webhook URL kube-apiserver could not use with
// client certificates.
func checkServerURL(serverURL string) error {
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("webhook URL %q: %w", serverURL, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("webhook URL %q: %w", serverURL,
			errors.New("it must be an absolute https:// URL, such as https://127.0.0.1:21362/authenticate"))
	}
	return nil
}
