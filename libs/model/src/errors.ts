/** One failing input field, named the way the client wrote it: `messages[3].id`, `query.limit`. */
export interface FieldError {
  field: string;
  message: string;
}

/** RFC 9457 problem details, the body of every error response. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  requestId?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * An error with an HTTP meaning. Services throw these; one mapper per service turns them into
 * problems whose title is the status phrase and whose detail is this message.
 */
export class AppError extends Error {
  readonly extensions: Record<string, unknown>;

  constructor(
    readonly status: number,
    detail: string,
    readonly options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      extensions?: Record<string, unknown>;
    } = {},
  ) {
    super(detail);
    this.name = new.target.name;
    this.extensions = options.extensions ?? {};
  }

  get errors(): FieldError[] | undefined {
    return this.options.errors;
  }
}

export class ValidationError extends AppError {
  constructor(errors: FieldError[], detail = describe(errors)) {
    super(400, detail, { errors });
  }
}

export class NotFoundError extends AppError {
  constructor(detail: string) {
    super(404, detail);
  }
}

export class ConflictError extends AppError {
  constructor(detail: string, extensions?: Record<string, unknown>) {
    super(409, detail, { extensions });
  }
}

export class PayloadTooLargeError extends AppError {
  constructor(detail: string, errors?: FieldError[]) {
    super(413, detail, { errors });
  }
}

export class UnsupportedMediaTypeError extends AppError {
  constructor(detail: string) {
    super(415, detail, { errors: [{ field: 'content-type', message: detail }] });
  }
}

function describe(errors: FieldError[]): string {
  const first = errors[0];
  if (!first) return 'The request is invalid.';
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${first.field}: ${first.message}${more}`;
}
