package ch.ungleich.uncloud.hook.cli;

import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/**
 * Documents the hook call. The call itself never gets here: {@code Main} sends
 * {@code hook DOMAIN OP SUBOP EXTRA} straight to {@code HookMain}, without picocli, for speed.
 */
@Command(
    name = "hook",
    mixinStandardHelpOptions = true,
    description = {
      "libvirt's qemu hook: what /etc/libvirt/hooks/qemu runs, with the domain XML on stdin.",
      "prepare/migrate/restore begin: validate the metadata; start begin: install the rules;",
      "reconnect begin: re-apply them; stopped/release end: remove them; anything else: nothing.",
      "Stdout stays empty; errors are one line on stderr; non-zero aborts the libvirt operation."
    })
final class HookCommand implements Runnable {
  @Parameters(index = "0", paramLabel = "DOMAIN")
  String domain;

  @Parameters(index = "1", paramLabel = "OP")
  String op;

  @Parameters(index = "2", paramLabel = "SUBOP")
  String sub;

  @Parameters(index = "3", paramLabel = "EXTRA", arity = "0..1")
  String extra;

  @Override
  public void run() {
    throw new IllegalStateException("the hook call is dispatched by Main before picocli");
  }
}
