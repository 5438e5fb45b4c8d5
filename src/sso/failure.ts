import { Unauthenticated } from '../errors.js';

/**
 * A sign-in the protocol layer rejects (bad signature, expired, replayed, wrong state…). The code
 * is the reason `login.failed` records; `subject` names who it claimed to be, when known.
 */
export class LoginFailure extends Unauthenticated {
  constructor(
    reason: string,
    message: string,
    readonly subject: string | null = null,
  ) {
    super(reason, message);
  }
}
