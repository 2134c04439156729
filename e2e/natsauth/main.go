// natsauth creates the key material of the local stack's NATS server, which runs in
// operator (decentralised JWT) mode: an operator with a signing key, and a system account
// with one user. Landlord signs tenant accounts with the operator signing key and pushes
// them to the server's resolver as the system account's user.
//
// Usage: natsauth <dir>
//
// Writes into <dir> (mode 0600): operator.jwt, operator-signing.nk (the signing key's
// seed), sys.creds (a system-account user), and resolver.conf (the nats.conf lines naming
// the operator, the system account and its preloaded JWT). Prints nothing secret.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: natsauth <dir>")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "natsauth:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	operator, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	operatorPub, _ := operator.PublicKey()
	signing, err := nkeys.CreateOperator()
	if err != nil {
		return err
	}
	signingPub, _ := signing.PublicKey()
	signingSeed, _ := signing.Seed()

	sys, err := nkeys.CreateAccount()
	if err != nil {
		return err
	}
	sysPub, _ := sys.PublicKey()

	oc := jwt.NewOperatorClaims(operatorPub)
	oc.Name = "landlord-dev"
	oc.SigningKeys.Add(signingPub)
	oc.SystemAccount = sysPub
	operatorJWT, err := oc.Encode(operator)
	if err != nil {
		return fmt.Errorf("operator JWT: %w", err)
	}

	// The system account is signed by the signing key, like every account Landlord makes.
	ac := jwt.NewAccountClaims(sysPub)
	ac.Name = "SYS"
	sysJWT, err := ac.Encode(signing)
	if err != nil {
		return fmt.Errorf("system account JWT: %w", err)
	}

	user, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	userPub, _ := user.PublicKey()
	userSeed, _ := user.Seed()
	uc := jwt.NewUserClaims(userPub)
	uc.Name = "landlord"
	userJWT, err := uc.Encode(sys)
	if err != nil {
		return fmt.Errorf("system user JWT: %w", err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, userSeed)
	if err != nil {
		return err
	}

	resolverDir := filepath.Join(dir, "resolver")
	if err := os.MkdirAll(resolverDir, 0o700); err != nil {
		return err
	}
	resolver := fmt.Sprintf(`operator: %q
system_account: %s
resolver: {
  type: full
  dir: %q
  allow_delete: true
  interval: "2m"
}
resolver_preload: {
  %s: %q
}
`, filepath.Join(dir, "operator.jwt"), sysPub, resolverDir, sysPub, sysJWT)

	files := map[string][]byte{
		"operator.jwt":        []byte(operatorJWT),
		"operator-signing.nk": append(signingSeed, '\n'),
		"sys.creds":           creds,
		"resolver.conf":       []byte(resolver),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return err
		}
	}
	return nil
}
