export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}
export declare const CHARTS: readonly string[];
export declare const HELM_DIR: string;
export declare function ensureHelm(): string;
export declare function helm(args: string[], options?: { cwd?: string; env?: NodeJS.ProcessEnv }): HelmResult;
export declare function buildDependencies(helmDir?: string): void;
export declare function extractZipEntry(zipFile: string, entryName: string): Buffer;
