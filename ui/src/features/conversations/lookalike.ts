// The desk's look-alike verdict on a userId, as the list row and the identity card carry it.
/** `imitates`: the identity it is confusable with (UTS #39 skeletons), when the desk knows one;
 * `mixedScript`: its letters come from more than one script. */
export interface LookAlike {
  imitates: string | null;
  mixedScript: boolean;
}

/** The verdict of a row or card (`null`: an ordinary userId). */
export function lookAlikeOf(x: object): LookAlike | null {
  return (x as { lookAlike?: LookAlike | null }).lookAlike ?? null;
}

/** What a `lookalike_user_id` alert's evidence says: the look-alike userId and the identity it
 * passes for (`null`: none known, it only mixes scripts). The desk writes them as `imitator` and
 * `imitates` (empty when there is none). */
export interface LookAlikeEvidence {
  imitator: string | null;
  imitates: string | null;
}

export function lookAlikeEvidence(evidence: readonly { label: string; value: string }[]): LookAlikeEvidence {
  const get = (label: string): string | null => evidence.find((e) => e.label === label)?.value || null;
  return { imitator: get('imitator') ?? get('userId'), imitates: get('imitates') };
}
