import { createHash } from "node:crypto";
import * as bcrypt from "bcryptjs";

/** bcrypt cost; distribution's htpasswd accepts any bcrypt cost. */
const bcryptCost = 10;

/**
 * One htpasswd line (`user:$2b$...`) for distribution's htpasswd auth, which accepts bcrypt only.
 *
 * The salt is derived from the user and password instead of drawn at random: a random salt
 * would change the uploaded file on every `pulumi up` and so replace the registry container
 * each time. The hash is stored only as a Pulumi secret, so the deterministic salt gives away
 * nothing an attacker could not already see.
 */
export function htpasswdLine(username: string, password: string): string {
  const digest = createHash("sha256")
    .update("airgap-conformance/htpasswd\0")
    .update(username)
    .update("\0")
    .update(password)
    .digest();
  const salt = `$2b$${String(bcryptCost).padStart(2, "0")}$${bcrypt.encodeBase64(Array.from(digest.subarray(0, 16)), 16)}`;
  return `${username}:${bcrypt.hashSync(password, salt)}\n`;
}
