import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { INPUT_CHECKS, type InputCheck } from '../../lambda/shared/workflow-input';

/** The Choice condition for one check: IsPresent first, so no comparison can read a missing field. */
function condition(check: InputCheck): sfn.Condition {
  const present = sfn.Condition.isPresent(check.path);
  if (check.kind === 'present') return present;
  const typed =
    check.kind === 'timestamp' ? sfn.Condition.isTimestamp(check.path) : sfn.Condition.isString(check.path);
  return sfn.Condition.and(
    present,
    typed,
    ...(check.matches ? [sfn.Condition.stringMatches(check.path, check.matches)] : []),
  );
}

/** True when the execution input passes every check of INPUT_CHECKS. */
export function validInput(): sfn.Condition {
  return sfn.Condition.and(...INPUT_CHECKS.map(condition));
}

/** The Fail state's cause: every rule, so the reader of a rejected execution sees what was expected. */
export function inputRejectedCause(): string {
  const rules = INPUT_CHECKS.map((c) => `${c.path.replace(/^\$\./, '')}: ${c.allowed}`).join('; ');
  return `The execution input breaks a rule of lambda/shared/workflow-input.ts (INPUT_CHECKS); nothing was frozen. Rules: ${rules}. The notification of this failure names the offending field and value.`;
}
