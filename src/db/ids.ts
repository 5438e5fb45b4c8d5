import { v7 } from 'uuid';

/** Time-ordered ids made in the application, so no dialect needs RETURNING. */
export function newId(): string {
  return v7();
}
