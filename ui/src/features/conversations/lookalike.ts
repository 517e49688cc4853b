// The desk's look-alike verdict on a userId (the row's and the identity card's `lookAlike`:
// `imitates` the identity it is confusable with, `mixedScript` its letters come from more than one
// script), and what a `lookalike_user_id` alert's evidence says.

/** What a `lookalike_user_id` alert's evidence says: the look-alike userId and the identity it
 * passes for (`null`: none known, it only mixes scripts). The desk writes them as `imitator` and
 * `imitates` (empty when there is none). */
export interface LookAlikeEvidence {
  imitator: string | null;
  imitates: string | null;
  /** Neither can be told to be the imitation (`ambiguous: true`: the same kind of look-alike,
   * e.g. `cust-4815l623` / `cust-48151623`): the two only look alike, in no direction. */
  ambiguous: boolean;
}

export function lookAlikeEvidence(evidence: readonly { label: string; value: string }[]): LookAlikeEvidence {
  const get = (label: string): string | null => evidence.find((e) => e.label === label)?.value || null;
  return { imitator: get('imitator') ?? get('userId'), imitates: get('imitates'), ambiguous: get('ambiguous') === 'true' };
}
