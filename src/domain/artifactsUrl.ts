// WEAVER_ARTIFACTS: where the artifact store is. Unset: the local directory (WEAVER_ARTIFACT_DIR);
// `s3://bucket[/prefix]`: an S3-compatible object store that workers on several hosts share.

export interface S3Location {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
}

/** `s3://bucket[/prefix]`; anything else is refused, naming the variable. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url.trim());
  if (!m) throw new Error(`WEAVER_ARTIFACTS must be s3://bucket[/prefix] (or unset for the local directory WEAVER_ARTIFACT_DIR), got "${url}"`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  return { bucket: m[1], prefix: prefix ? `${prefix}/` : '' };
}
