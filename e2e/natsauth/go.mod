module landlord.dev/e2e/natsauth

go 1.25.0

require (
	github.com/nats-io/jwt/v2 v2.3.0
	github.com/nats-io/nkeys v0.3.0
)

require golang.org/x/crypto v0.0.0-20210314154223-e6e6c4f2bb5b // indirect
