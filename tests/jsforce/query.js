// One SOQL query through jsforce, an independent Salesforce client, against the emulator.
// Usage: node query.js INSTANCE_URL ACCESS_TOKEN SOQL   (trust the emulator's CA with NODE_EXTRA_CA_CERTS)
// Prints {"ok": true, "totalSize": n} or {"ok": false, "name", "errorCode", "message"} as one JSON line.
const jsforce = require("jsforce");

const [instanceUrl, accessToken, soql] = process.argv.slice(2);
const conn = new jsforce.Connection({ instanceUrl, accessToken, version: "59.0" });
conn.query(soql).then(
  (result) => console.log(JSON.stringify({ ok: true, totalSize: result.totalSize })),
  (err) => console.log(JSON.stringify({ ok: false, name: err.name, errorCode: err.errorCode, message: err.message })),
);
