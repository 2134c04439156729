// Evaluates flags against an OFREP server through the official OpenFeature providers, and
// keeps them alive so that a test can watch them pick up changes:
//
// - server SDK + @openfeature/ofrep-provider: dynamic context, one request per evaluation
//   (POST /ofrep/v1/evaluate/flags/{key});
// - web SDK + @openfeature/ofrep-web-provider: static context, bulk evaluation cached in the
//   provider and refreshed by polling with If-None-Match (POST /ofrep/v1/evaluate/flags).
//
// Usage: OFREP_URL=http://127.0.0.1:8080 [OFREP_TENANT=acme [OFREP_ASSERTION=v1.…]] node client.mjs
// (a pooled runtime wants both headers a shared tenant's route adds)
// Then one JSON line per request on stdin: {"flags": [{"key": "k", "type": "boolean",
// "default": false}, ...]}; one JSON line per answer on stdout:
// {"server": {"k": details}, "web": {"k": details}, "webChanges": <ConfigurationChanged events>}
// where details = {value, variant, reason, errorCode}.
// The first line printed is {"ready": true, "web": <provider status>} once both providers
// are initialized.

import readline from 'node:readline';
import { OpenFeature as ServerFeature } from '@openfeature/server-sdk';
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature as WebFeature, ClientProviderEvents } from '@openfeature/web-sdk';
import { OFREPWebProvider } from '@openfeature/ofrep-web-provider';

const baseUrl = process.env.OFREP_URL;
if (!baseUrl) {
  console.error('OFREP_URL is not set');
  process.exit(2);
}
const tenant = process.env.OFREP_TENANT;
const assertion = process.env.OFREP_ASSERTION;
const headers = [
  ...(tenant ? [['X-Landlord-Tenant', tenant]] : []),
  ...(assertion ? [['X-Landlord-Tenant-Assertion', assertion]] : []),
];
const pollInterval = Number(process.env.OFREP_POLL_MS ?? 500);

await ServerFeature.setProviderAndWait(new OFREPProvider({ baseUrl, headers }));
const server = ServerFeature.getClient();

let webChanges = 0;
await WebFeature.setContext({ targetingKey: 'ofrep-test-user' });
const webProvider = new OFREPWebProvider({
  baseUrl,
  headers,
  pollInterval,
  // Node has no localStorage and no document.
  cacheMode: 'disabled',
  disableVisibilityRefresh: true,
  changeDetection: 'polling',
});
let webStatus = 'READY';
try {
  await WebFeature.setProviderAndWait(webProvider);
} catch (error) {
  webStatus = `ERROR: ${error}`;
}
const web = WebFeature.getClient();
web.addHandler(ClientProviderEvents.ConfigurationChanged, () => {
  webChanges += 1;
});

const details = (d) => ({
  value: d.value,
  variant: d.variant ?? null,
  reason: d.reason ?? null,
  errorCode: d.errorCode ?? null,
});

const serverMethods = {
  boolean: 'getBooleanDetails',
  string: 'getStringDetails',
  integer: 'getNumberDetails',
  float: 'getNumberDetails',
  object: 'getObjectDetails',
};

async function evaluate(flags) {
  const out = { server: {}, web: {}, webChanges };
  for (const { key, type, default: fallback } of flags) {
    const method = serverMethods[type];
    if (!method) throw new Error(`unknown flag type ${type}`);
    out.server[key] = details(await server[method](key, fallback, { targetingKey: 'ofrep-test-user' }));
    out.web[key] = details(web[method](key, fallback));
  }
  return out;
}

console.log(JSON.stringify({ ready: true, web: webStatus }));
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  try {
    const request = JSON.parse(line);
    console.log(JSON.stringify(await evaluate(request.flags)));
  } catch (error) {
    console.log(JSON.stringify({ error: String(error) }));
  }
}
await ServerFeature.close();
await WebFeature.close();
process.exit(0);
