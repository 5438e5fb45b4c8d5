import { Router, type Response } from 'express';
import { escapeHtml, htmlPage as page } from '../http/html-page.js';
import type { AppDeps } from '../http/deps.js';
import { RosterError } from '../errors.js';
import { acceptInvitation, lookUpInvitation } from '../provisioning/invitations.js';

function failure(res: Response, err: unknown): void {
  if (!(err instanceof RosterError) || err.status >= 500) throw err;
  page(res, err.status, 'This invitation cannot be used', `<p>${escapeHtml(err.message)}</p>`);
}

/**
 * The pages behind the link in an invitation mail. Opening the link changes nothing (mail
 * scanners follow links); accepting takes a click, which posts the form.
 */
export function invitePages(deps: AppDeps): Router {
  const r = Router();
  r.get('/:token', async (req, res) => {
    try {
      const inv = await lookUpInvitation(deps.db, req.params.token!);
      page(
        res,
        200,
        `Join ${inv.tenantName}`,
        `<p>You were invited as <strong>${escapeHtml(inv.user.email ?? inv.user.userName)}</strong>.</p>` +
          `<form method="post"><button type="submit">Accept invitation</button></form>` +
          `<p><small>The link expires ${escapeHtml(new Date(inv.expiresAt).toUTCString())}.</small></p>`,
      );
    } catch (err) {
      failure(res, err);
    }
  });
  r.post('/:token', async (req, res) => {
    try {
      const user = await acceptInvitation(deps.db, req.params.token!, req.id);
      page(
        res,
        200,
        'Invitation accepted',
        `<p>Welcome, ${escapeHtml(user.email ?? user.userName)}. Sign in through your organisation's single sign-on.</p>`,
      );
    } catch (err) {
      failure(res, err);
    }
  });
  return r;
}
