// A trading API with no did-auth code at all: it trusts the identity nginx passes on after
// did-auth-gate checked the request (X-Auth-* headers), and echoes what it received.
//   node tests/gateway/trading_api.mjs PORT
import http from "node:http";

const port = Number(process.argv[2] || 9000);
const server = http.createServer((req, res) => {
  const body = JSON.stringify({
    method: req.method,
    path: req.url,
    subject: req.headers["x-auth-subject"] ?? null,
    scope: req.headers["x-auth-scope"] ?? null,
    client_id: req.headers["x-auth-client-id"] ?? null,
    session: req.headers["x-auth-session"] ?? null,
    authorization_details: req.headers["x-auth-authorization-details"] ?? null,
    authorization: req.headers["authorization"] ?? null,
    dpop: req.headers["dpop"] ?? null,
  });
  res.writeHead(200, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
});
server.keepAliveTimeout = 75_000;
server.listen(port, "127.0.0.1", () => console.log(`trading api on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
