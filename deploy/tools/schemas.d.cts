export type JsonSchema = Record<string, unknown>;
export interface DurationRule {
  min?: string;
  minMs?: number;
  max?: string;
  maxMs?: number;
  step?: string;
  stepMs?: number;
  /** A duration (dividesMs) or another variable this one must divide. */
  divides?: string;
  dividesMs?: number;
  /** Another variable this one must not exceed. */
  atMost?: string;
  default?: string;
  defaultMs?: number;
}
export declare const HELM_DIR: string;
export declare const SERVICES: Record<string, { port: number; config: Record<string, JsonSchema> }>;
export declare function buildSchemas(): Record<string, JsonSchema>;
export declare function buildDurationRules(): Record<string, Record<string, DurationRule>>;
export declare function render(schema: JsonSchema | Record<string, DurationRule>): string;
