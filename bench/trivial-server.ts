import express from 'express';

/** The yardstick: a middleware-free express route answering a constant SCIM ListResponse. */
const body = JSON.stringify({
  schemas: ['urn:ietf:params:scim:api:messages:2.0:ListResponse'],
  totalResults: 0,
  startIndex: 1,
  itemsPerPage: 0,
  Resources: [],
});
const app = express();
app.get('/scim/v2/Users', (_req, res) => {
  res.setHeader('Content-Type', 'application/scim+json');
  res.end(body);
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('ready\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
