export type JsonSchema = Record<string, unknown>;
export declare const HELM_DIR: string;
export declare const SERVICES: Record<string, { port: number; config: Record<string, JsonSchema> }>;
export declare function buildSchemas(): Record<string, JsonSchema>;
export declare function render(schema: JsonSchema): string;
