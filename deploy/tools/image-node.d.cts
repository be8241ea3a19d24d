export declare function ensureImageNode(): string;
export declare function imageNodeSupported(): boolean;
export declare function imageNodeVersion(): string;
