export { errorHandler, isDependencyFailure } from './error-handler';
export { undecodableSegment } from './path-templates';
export { createLogger, type Logger } from './logger';
export { createMetrics, type ServiceMetrics } from './metrics';
export { fieldErrors, fieldName, type ProblemExtras, sendProblem, writeProblem } from './problem';
export {
  answeredMissingHost,
  exitOnFatal,
  LARGE_REQUEST_HEADERS,
  listen,
  ListenError,
  onShutdown,
  runMain,
  type RunningServer,
  type ServeOptions,
  type ShutdownStep,
} from './serve';
export {
  apiRouter,
  createServiceApp,
  type ReadinessCheck,
  SECURITY_HEADERS,
  stampAnswer,
  type ServiceAppOptions,
} from './service-app';
export {
  requireServiceToken,
  serviceAuthorization,
  serviceTokenFrom,
  type ServiceToken,
} from './service-auth';
export { FORM_MEDIA_TYPE, formBody, FormBodyError } from './form-body';
export { notJsonBody } from './json-body';
export { getTracer, linkTo, startTelemetry, TRACEPARENT, traceparentOf, withSpan } from './telemetry';
export { validate, validateQuery } from './validate';
export { apiErrorMessage } from './zod-messages';
export { waitAtMost } from './wait';
export { peerAddress, plainAddress } from './peer-address';
export {
  BODY_PROBLEMS,
  FRAME_PROBLEMS,
  type OpenApiDocument,
  openApiDocument,
  type Operation,
  type OperationResponse,
  PROBLEM_MEDIA_TYPE,
  problemResponse,
  problemSchema,
  type Problems,
  shapeOf,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
  SERVICE_TOKEN_SCHEME,
} from './openapi';
export { checkResponses, type ResponseCheck, type SentResponse } from './response-check';
