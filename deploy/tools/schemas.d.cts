export type JsonSchema = Record<string, unknown>;
export interface DurationRange {
  min?: string;
  minMs?: number;
  max?: string;
  maxMs?: number;
}
export declare const HELM_DIR: string;
export declare const SERVICES: Record<string, { port: number; config: Record<string, JsonSchema> }>;
export declare function buildSchemas(): Record<string, JsonSchema>;
export declare function buildDurationRanges(): Record<string, Record<string, DurationRange>>;
export declare function render(schema: JsonSchema | Record<string, DurationRange>): string;
