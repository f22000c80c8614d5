#!/usr/bin/python3
"""The official Python attestation client (Debian python3-azure: azure.security.attestation
1.0.1) against cledger-attestd, with its default token validation (signature against /certs,
expiry, not-before). Environment (set by tests/cli/attestd_e2e.py):
  AAD_URL, ISO_URL   base URLs of an AAD and an Isolated instance
  REQUESTS_CA_BUNDLE the instances' TLS certificates
  BEARER             an administrator's JWT accepted by both instances
  SIGNER_KEY, SIGNER_CERT   PEM of the Isolated instance's management key and certificate
  NEW_KEY, NEW_CERT         PEM of a second key and certificate (added, used, removed)
  VECTORS            tests/data/attestation-vectors
"""
import base64
import json
import os
import sys
import time

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.security.attestation import (AttestationAdministrationClient, AttestationClient,
                                        AttestationType)

V = os.environ["VECTORS"]
PERMIT = "version=1.0; authorizationrules{=> permit();}; issuancerules{};"
CUSTOM = 'version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type="sdk-test", value="true");};'
DENY = "version=1.0; authorizationrules{=> deny();}; issuancerules{};"
MRENCLAVE = "b779202618becb636768e5d902f28d524222735fafb539ea9ba07c3fc171a1c2"


class Cred:
    def get_token(self, *scopes, **kwargs):
        return AccessToken(os.environ["BEARER"], int(time.time()) + 3600)


def rd(p, mode="rb"):
    with open(os.path.join(V, p), mode) as f:
        return f.read()


def txt(path):
    with open(path) as f:
        return f.read()


steps = 0


def step(cond, what):
    global steps
    if not cond:
        raise AssertionError(what)
    steps += 1


def main():
    quote = rd("sgx/azure-sdk_sgx_quote_v3.bin")
    oe = rd("sgx/azure-sdk_oe_report.bin")
    runtime = rd("sgx/azure-sdk_runtime_data.bin")
    aad = os.environ["AAD_URL"]
    client = AttestationClient(aad, Cred())
    admin = AttestationAdministrationClient(aad, Cred())

    meta = client.get_open_id_metadata()
    step(meta["issuer"] == aad and meta["jwks_uri"] == aad + "/certs", "open id metadata")
    signers = client.get_signing_certificates()
    step(len(signers) == 1 and signers[0].certificates, "signing certificates")

    res, tok = client.attest_sgx_enclave(quote, runtime_data=runtime)
    step(res.mr_enclave == MRENCLAVE and res.product_id == 1 and res.svn == 1 and res.is_debuggable is False,
         "attest_sgx_enclave claims")
    step(res.enclave_held_data == runtime and res.sgx_collateral is not None and res.issuer == aad, "ehd + collateral")
    step(res.policy_hash is not None and res.verifier_type == "sgx", "policy hash, verifier type")
    res, tok = client.attest_open_enclave(oe, runtime_json=runtime)
    step(res.runtime_claims["jwk"]["crv"] == "P-256" and res.enclave_held_data is None, "attest_open_enclave JSON")
    res, tok = client.attest_open_enclave(oe, runtime_data=runtime, draft_policy=PERMIT)
    step(tok.algorithm == "none" and res.policy_claims in (None, {}), "draft policy: unsecured token")
    res, tok = client.attest_sgx_enclave(quote, inittime_json=runtime)  # sends dataType without data
    step(res.mr_enclave == MRENCLAVE, "inittime_json tolerated")

    policy, _ = admin.get_policy(AttestationType.SGX_ENCLAVE)
    step(policy.startswith("version= 1.0;authorizationrules"), "default policy")
    result, _ = admin.set_policy(AttestationType.SGX_ENCLAVE, CUSTOM)
    step(str(result.policy_resolution).endswith("UPDATED") or result.policy_resolution == "Updated", "set_policy")
    step(result.policy_token_hash is not None, "set_policy token hash")
    policy, _ = admin.get_policy(AttestationType.SGX_ENCLAVE)
    step(policy == CUSTOM, "get_policy after set")
    res, _ = client.attest_sgx_enclave(quote, runtime_data=runtime)
    step(res.policy_claims.get("sdk-test") == "true", "custom issuance claim")
    admin.set_policy(AttestationType.SGX_ENCLAVE, DENY)
    try:
        client.attest_sgx_enclave(quote, runtime_data=runtime)
        step(False, "deny policy must fail the attestation")
    except HttpResponseError as e:
        step(e.status_code == 400, "deny -> 400")
    result, _ = admin.reset_policy(AttestationType.SGX_ENCLAVE)
    step("REMOVED" in str(result.policy_resolution).upper(), "reset_policy")
    policy, _ = admin.get_policy(AttestationType.SGX_ENCLAVE)
    step(policy.startswith("version= 1.0;authorizationrules"), "default policy again")
    # TPM step 1 with a policy present (the SDK's own test does the same)
    admin.set_policy(AttestationType.TPM, PERMIT)
    resp = json.loads(client.attest_tpm(json.dumps({"payload": {"type": "aikcert"}})))
    step(resp["payload"]["challenge"] and resp["payload"]["service_context"], "attest_tpm step 1")

    # Isolated: signed policies and the management certificate set
    iso = os.environ["ISO_URL"]
    key, cert = txt(os.environ["SIGNER_KEY"]), txt(os.environ["SIGNER_CERT"])
    new_key, new_cert = txt(os.environ["NEW_KEY"]), txt(os.environ["NEW_CERT"])
    iadmin = AttestationAdministrationClient(iso, Cred())
    try:
        iadmin.set_policy(AttestationType.SGX_ENCLAVE, PERMIT)
        step(False, "unsigned policy must be refused in Isolated mode")
    except HttpResponseError as e:
        step(e.status_code == 400, "unsigned refused")
    result, _ = iadmin.set_policy(AttestationType.SGX_ENCLAVE, CUSTOM, signing_key=key, signing_certificate=cert)
    step(result.policy_signer is not None, "signed set_policy reports its signer")
    certs, _ = iadmin.get_policy_management_certificates()
    step(len(certs) == 1, "one management certificate")
    r, _ = iadmin.add_policy_management_certificate(new_cert, signing_key=key, signing_certificate=cert)
    step(str(r.certificate_resolution).upper().endswith("PRESENT"), "add certificate")
    certs, _ = iadmin.get_policy_management_certificates()
    step(len(certs) == 2, "two management certificates")
    r, _ = iadmin.remove_policy_management_certificate(new_cert, signing_key=key, signing_certificate=cert)
    step(str(r.certificate_resolution).upper().endswith("ABSENT"), "remove certificate")
    result, _ = iadmin.reset_policy(AttestationType.SGX_ENCLAVE, signing_key=key, signing_certificate=cert)
    step("REMOVED" in str(result.policy_resolution).upper(), "signed reset")
    print("python attestation SDK flow: %d steps passed" % steps)


if __name__ == "__main__":
    main()
