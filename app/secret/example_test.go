package secret_test

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"idbridge/app/secret"
)

// Example shows sealing a site's shared secret bound to its row, then a key
// rotation: the new key goes first, old values still open, and
// NeedsRotation finds the ones to re-seal.
func Example() {
	// Real keys come from IDBRIDGE_ENCRYPTION_KEYS or GenerateKey; these are
	// fixed so the example is reproducible.
	k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))

	keys, err := secret.ParseKeys("k1:" + k1)
	if err != nil {
		panic(err)
	}
	ring, err := secret.NewRing(keys)
	if err != nil {
		panic(err)
	}
	ad := secret.AD("sites", "shared_secret", "site-1")
	sealed, err := ring.Seal([]byte("s3cr3t"), ad)
	if err != nil {
		panic(err)
	}
	id, _ := secret.KeyID(sealed)
	fmt.Println("sealed with", id, "header", sealed[:4])

	// The same bytes copied to another row do not open.
	_, err = ring.Open(sealed, secret.AD("sites", "shared_secret", "site-2"))
	fmt.Println("other row:", err)

	keys, _ = secret.ParseKeys("k2:" + k2 + ",k1:" + k1)
	rotated, _ := secret.NewRing(keys)
	plain, _ := rotated.Open(sealed, ad)
	fmt.Printf("opened %q, needs rotation: %v\n", plain, rotated.NeedsRotation(sealed))
	resealed, _ := rotated.Seal(plain, ad)
	fmt.Println("re-sealed, needs rotation:", rotated.NeedsRotation(resealed))

	// A ring that lost k2 cannot open the new value and says which key is missing.
	_, err = ring.Open(resealed, ad)
	fmt.Println(err)
	// Output:
	// sealed with k1 header [1 2 107 49]
	// other row: open with key "k1": cannot decrypt sealed value: wrong key, wrong associated data or tampered value
	// opened "s3cr3t", needs rotation: true
	// re-sealed, needs rotation: false
	// sealed with unknown key "k2"
}
