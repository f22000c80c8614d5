"""A client certificate whose dates cannot be read, for the services' identity checks."""
import os
import ssl
import subprocess


def bad_dates_cert(d):
    """A self-signed P-256 certificate and key in directory d, with notAfter in month 13 (the DER
    is edited after signing: the servers never check a client certificate's signature, the
    handshake proves the key). Returns (cert_path, key_path)."""
    key, pem = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", pem, "-days", "30", "-subj", "/CN=bad-dates"],
                   check=True, capture_output=True)
    der = bytearray(ssl.PEM_cert_to_DER_cert(open(pem).read()))
    at = [i for i in range(len(der) - 15) if der[i] == 0x17 and der[i + 1] == 13][1]  # notAfter UTCTime
    der[at + 4:at + 6] = b"13"
    with open(pem, "w") as f:
        f.write(ssl.DER_cert_to_PEM_cert(bytes(der)))
    return pem, key
