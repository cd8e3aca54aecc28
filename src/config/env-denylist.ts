/**
 * Environment variables that programs read as code or configuration. A generic job's
 * `fields` put payload values into the command's environment; under one of these names a
 * sender could choose what runs (LD_PRELOAD, BASH_ENV, NODE_OPTIONS), where programs are found
 * (PATH), or how a deploy tool behaves (GIT_SSH_COMMAND, ANSIBLE_CONFIG, KUBECONFIG). Such
 * names are a config error. Compared case-insensitively: some programs read `http_proxy`.
 */

interface Rule {
  names?: readonly string[];
  prefixes?: readonly string[];
  why: string;
}

const RULES: readonly Rule[] = [
  { names: ['PATH', 'HOME', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'SHELL', 'USER', 'LOGNAME'], prefixes: ['LC_'], why: 'it tells every program where to find programs, files or its locale' },
  { prefixes: ['LD_', 'DYLD_'], names: ['GCONV_PATH', 'GLIBC_TUNABLES', 'MALLOC_CHECK_', 'MALLOC_PERTURB_'], why: 'the dynamic loader and the C library read it, so it can load code into every program' },
  {
    names: ['BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS1', 'PS2', 'PS4', 'PROMPT_COMMAND', 'IFS', 'CDPATH', 'GLOBIGNORE', 'HISTFILE', 'INPUTRC', 'ZDOTDIR', 'FPATH'],
    prefixes: ['BASH_FUNC_'],
    why: 'shells run it as code or read it as their settings',
  },
  {
    names: ['NODE_OPTIONS', 'NODE_PATH', 'RUBYOPT', 'RUBYLIB', 'CLASSPATH', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'JDK_JAVA_OPTIONS', 'PHPRC', 'TCLLIBPATH', 'GOFLAGS', 'GOENV', 'GOPATH', 'GOROOT', 'GOPROXY', 'GOTOOLCHAIN', 'MAVEN_OPTS', 'GRADLE_OPTS', 'RUSTC_WRAPPER', 'RUSTFLAGS'],
    // Lua reads LUA_INIT, LUA_PATH and LUA_CPATH, and each with a version suffix (LUA_INIT_5_4).
    prefixes: ['PYTHON', 'PERL5', 'PERL', 'NODE_', 'NPM_CONFIG_', 'GEM_', 'BUNDLE_', 'JAVA_', 'R_', 'LUA_', 'DOTNET_', 'CORECLR_', 'CARGO_', 'PIP_'],
    why: 'an interpreter reads it as options, code or a module path',
  },
  {
    names: ['KUBECONFIG', 'EDITOR', 'VISUAL', 'PAGER', 'BROWSER', 'MAKEFLAGS', 'SUDO_ASKPASS', 'LESSOPEN', 'LESSCLOSE', 'PGPASSFILE', 'PGSERVICEFILE', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'CURL_CA_BUNDLE', 'REQUESTS_CA_BUNDLE', 'NODE_EXTRA_CA_CERTS', 'HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'NO_PROXY', 'GNUPGHOME', 'OPENSSL_CONF'],
    prefixes: ['GIT_', 'ANSIBLE_', 'SSH_', 'KUBE', 'HELM_', 'DOCKER_', 'COMPOSE_', 'TF_', 'AWS_', 'GOOGLE_', 'AZURE_', 'VAULT_', 'XDG_', 'SYSTEMD_', 'DBUS_'],
    why: 'a deploy tool reads it as configuration, a credential or a program to run',
  },
  {
    // rsync runs RSYNC_RSH as its remote shell, tar takes options from TAR_OPTIONS
    // (--checkpoint-action=exec=...), make reads MAKEFILES, a build runs CC and its like.
    names: ['TAR_OPTIONS', 'MAKEFILES', 'MFLAGS', 'CC', 'CXX', 'CPP', 'LD', 'AR', 'CFLAGS', 'CXXFLAGS', 'CPPFLAGS', 'LDFLAGS', 'HOSTALIASES', 'RES_OPTIONS', 'LOCALDOMAIN', 'LOCPATH', 'NLSPATH', 'SSLKEYLOGFILE', 'CURL_HOME', 'WGETRC', 'RCLONE_CONFIG', 'SYSTEMROOT'],
    prefixes: ['RSYNC_', 'YARN_', 'OPENSSL_', 'PNPM_', 'BUN_', 'DENO_', 'CONDA_', 'VIRTUAL_ENV', 'GPG_', 'TERRAFORM_', 'PACKER_', 'PULUMI_', 'NOMAD_', 'CONSUL_'],
    why: 'a build or transfer tool reads it as options, a program to run, or where to resolve or log to',
  },
];

/** Why `name` must not carry payload data, or undefined when it may. */
export function deniedEnvName(name: string): string | undefined {
  const upper = name.toUpperCase();
  for (const rule of RULES) {
    if (rule.names?.includes(upper) || rule.prefixes?.some((prefix) => upper.startsWith(prefix))) return rule.why;
  }
  return undefined;
}
