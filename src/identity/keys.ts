// Token key repository. PLACEHOLDER from the skeleton commit: the identity issue replaces it.
export async function rotateKeys(_dataDir: string): Promise<{ primary: number; kept: number }> {
  throw new Error('not implemented yet');
}
