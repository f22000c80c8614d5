// The official JS attestation client (@azure/attestation 1.0.0, pinned in package-lock.json)
// against cledger-attestd, with the client's default token validation. Environment (set by
// tests/cli/attestd_e2e.py): AAD_URL, ISO_URL, NODE_EXTRA_CA_CERTS, BEARER, SIGNER_KEY,
// SIGNER_CERT, NEW_KEY, NEW_CERT (PEM paths), VECTORS.
"use strict";
const fs = require("fs");
const path = require("path");
const {
  AttestationClient,
  AttestationAdministrationClient,
  KnownAttestationType,
} = require("@azure/attestation");

const V = process.env.VECTORS;
const PERMIT = "version=1.0; authorizationrules{=> permit();}; issuancerules{};";
const CUSTOM =
  'version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type="sdk-test", value="true");};';
const DENY = "version=1.0; authorizationrules{=> deny();}; issuancerules{};";
const MRENCLAVE = "b779202618becb636768e5d902f28d524222735fafb539ea9ba07c3fc171a1c2";
const cred = {
  getToken: async () => ({ token: process.env.BEARER, expiresOnTimestamp: Date.now() + 3600e3 }),
};
let steps = 0;
function step(cond, what) {
  if (!cond) throw new Error("step failed: " + what);
  steps++;
}
const rd = (p) => fs.readFileSync(path.join(V, p));
const txt = (p) => fs.readFileSync(p, "utf8");

async function main() {
  const quote = rd("sgx/azure-sdk_sgx_quote_v3.bin");
  const oe = rd("sgx/azure-sdk_oe_report.bin");
  const runtime = rd("sgx/azure-sdk_runtime_data.bin");
  const aad = process.env.AAD_URL;
  const client = new AttestationClient(aad, cred);
  const admin = new AttestationAdministrationClient(aad, cred);

  const meta = await client.getOpenIdMetadata();
  step(meta.issuer === aad && meta.jwks_uri === aad + "/certs", "open id metadata");
  const signers = await client.getAttestationSigners();
  step(signers.length === 1 && signers[0].certificates.length >= 1, "signers");

  let r = await client.attestSgxEnclave(quote, { runTimeData: runtime });
  step(r.body.mrEnclave === MRENCLAVE && r.body.productId === 1 && r.body.svn === 1, "attestSgxEnclave");
  step(Buffer.from(r.body.enclaveHeldData).equals(runtime), "enclaveHeldData");
  step(r.token.algorithm === "RS256", "signed token");
  r = await client.attestOpenEnclave(oe, { runTimeJson: runtime });
  step(r.body.runTimeClaims.jwk.crv === "P-256" && r.body.enclaveHeldData === undefined, "attestOpenEnclave JSON");
  r = await client.attestOpenEnclave(oe, { runTimeData: runtime, draftPolicyForAttestation: PERMIT });
  step(r.token.algorithm === "none", "draft policy: unsecured token");

  let p = await admin.getPolicy(KnownAttestationType.SgxEnclave);
  step(p.body.startsWith("version= 1.0;authorizationrules"), "default policy");
  let s = await admin.setPolicy(KnownAttestationType.SgxEnclave, CUSTOM);
  step(s.body.policyResolution === "Updated" && s.body.policyTokenHash.length === 32, "setPolicy");
  p = await admin.getPolicy(KnownAttestationType.SgxEnclave);
  step(p.body === CUSTOM, "getPolicy after set");
  r = await client.attestSgxEnclave(quote, { runTimeData: runtime });
  step(r.token.getBody()["sdk-test"] === "true", "custom issuance claim");
  await admin.setPolicy(KnownAttestationType.SgxEnclave, DENY);
  let denied = false;
  try {
    await client.attestSgxEnclave(quote, { runTimeData: runtime });
  } catch (e) {
    denied = e.statusCode === 400;
  }
  step(denied, "deny policy -> 400");
  s = await admin.resetPolicy(KnownAttestationType.SgxEnclave);
  step(s.body.policyResolution === "Removed", "resetPolicy");
  await admin.setPolicy(KnownAttestationType.Tpm, PERMIT);
  const t = JSON.parse(await client.attestTpm(JSON.stringify({ payload: { type: "aikcert" } })));
  step(t.payload.challenge && t.payload.service_context, "attestTpm step 1");

  const iso = process.env.ISO_URL;
  const key = txt(process.env.SIGNER_KEY), cert = txt(process.env.SIGNER_CERT);
  const newKey = txt(process.env.NEW_KEY), newCert = txt(process.env.NEW_CERT);
  const iadmin = new AttestationAdministrationClient(iso, cred);
  let refused = false;
  try {
    await iadmin.setPolicy(KnownAttestationType.SgxEnclave, PERMIT);
  } catch (e) {
    refused = e.statusCode === 400;
  }
  step(refused, "unsigned policy refused in Isolated mode");
  s = await iadmin.setPolicy(KnownAttestationType.SgxEnclave, CUSTOM, { privateKey: key, certificate: cert });
  step(s.body.policyResolution === "Updated" && s.body.policySigner, "signed setPolicy");
  let certs = await iadmin.getPolicyManagementCertificates();
  step(certs.body.length === 1, "one management certificate");
  let m = await iadmin.addPolicyManagementCertificate(newCert, key, cert);
  step(m.body.certificateResolution === "IsPresent", "addPolicyManagementCertificate");
  certs = await iadmin.getPolicyManagementCertificates();
  step(certs.body.length === 2, "two management certificates");
  s = await iadmin.setPolicy(KnownAttestationType.SgxEnclave, PERMIT, { privateKey: newKey, certificate: newCert });
  step(s.body.policyResolution === "Updated", "policy signed by the new certificate");
  m = await iadmin.removePolicyManagementCertificate(newCert, key, cert);
  step(m.body.certificateResolution === "IsAbsent", "removePolicyManagementCertificate");
  console.log("js attestation SDK flow: " + steps + " steps passed");
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
