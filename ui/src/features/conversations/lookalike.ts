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
