import {
  ConformanceRunError,
  preflightChecks,
  preflightFailure,
  type ConformanceRunPlan,
  type MirrorAccess,
} from "../../../core/conformance";
import { checkImages } from "../../mirror/actions/registry-client";

/**
 * Looks up every image of the plan in the mirror (manifest HEAD, one process) and fails, listing
 * what is missing or different, before the run pod is created.
 */
export async function runPreflight(
  plan: ConformanceRunPlan,
  mirror: MirrorAccess,
  digests: Readonly<Record<string, string>>,
  password: string | undefined,
  log: (line: string) => void,
): Promise<void> {
  const checks = preflightChecks(plan.images, digests);
  let results;
  try {
    results = await checkImages(
      {
        host: mirror.host,
        scheme: mirror.scheme,
        caFile: mirror.caFile,
        insecureSkipVerify: mirror.insecureSkipVerify,
        username: mirror.username,
        password,
      },
      checks,
    );
  } catch (error) {
    throw new ConformanceRunError(
      `preflight: cannot check the mirror ${mirror.scheme}://${mirror.host} (mirror.access): ${(error as Error).message}`,
    );
  }
  const byKey = new Map(checks.map((check) => [`${check.repository}@${check.reference}`, check]));
  const failure = preflightFailure(
    mirror.host,
    results.map((result) => ({
      ...result,
      source: byKey.get(`${result.repository}@${result.reference}`)?.source ?? result.repository,
    })),
  );
  if (failure !== undefined) throw new ConformanceRunError(failure);
  log(`preflight: all ${results.length} images the run needs are in the mirror ${mirror.host}`);
}
