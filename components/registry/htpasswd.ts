/** bcrypt cost; distribution's htpasswd accepts any bcrypt cost. */
const bcryptCost = 10;

/**
 * bcryptjs, required when called: the htpasswd entry's provider is stored in state with these
 * functions, and must load the library from the project rather than carry a copy of it.
 */
function bcrypt(): typeof import("bcryptjs") {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require("bcryptjs");
}

/**
 * One htpasswd line (`user:$2b$...`) for distribution's htpasswd auth, which accepts bcrypt only,
 * with a random salt: the same password never gives the same hash on two registries.
 */
export function htpasswdLine(username: string, password: string): string {
  return `${username}:${bcrypt().hashSync(password, bcrypt().genSaltSync(bcryptCost))}\n`;
}

/** Whether an htpasswd line is for this user and verifies this password. */
export function htpasswdMatches(line: string, username: string, password: string): boolean {
  const separator = line.indexOf(":");
  if (separator < 0 || line.slice(0, separator) !== username) return false;
  try {
    return bcrypt().compareSync(password, line.slice(separator + 1).trimEnd());
  } catch {
    return false;
  }
}
