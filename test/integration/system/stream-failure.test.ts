import assert from 'node:assert/strict';
import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { problemErrors } from '../../../src/http/problem.js';
import { streamTable } from '../../../src/http/stream.js';

/**
 * A streamed report whose rows fail part-way (a statement refused, the database gone) has sent its
 * 200 already: the response is cut, so the client cannot take the partial table for a whole one,
 * and the error handler does not try to answer a second time (ERR_HTTP_HEADERS_SENT).
 */
describe('a streamed table that fails part-way', () => {
  for (const format of ['json', 'csv'] as const) {
    it(`cuts the ${format} response and is logged once, without a second answer`, async () => {
      const logged: unknown[] = [];
      const after: unknown[] = [];
      const app = express();
      app.use((req, _res, next) => {
        (req as unknown as { log: unknown }).log = {
          error: (o: unknown) => logged.push(o),
          warn: (o: unknown) => logged.push(o),
        };
        next();
      });
      app.get('/report', async (_req, res) => {
        res.type(format === 'csv' ? 'text/csv' : 'application/json');
        await streamTable(
          res,
          format,
          ['n'],
          (async function* () {
            yield [{ n: 1 }, { n: 2 }];
            throw new Error('statement refused');
          })(),
        );
      });
      app.use(problemErrors());
      app.use(((err, _req, res, _next) => {
        after.push(err);
        res.destroy();
      }) as ErrorRequestHandler);
      const err = await request(app)
        .get('/report')
        .then(
          () => undefined,
          (e: Error) => e,
        );
      assert.ok(err, 'the client sees the response cut, not a complete table');
      assert.deepEqual(after, [], 'no error escaped the error handler');
      assert.equal(logged.length, 1);
    });
  }
});
