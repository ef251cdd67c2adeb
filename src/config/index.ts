/** The configuration layer: nova.conf in, a frozen typed Config out. */
export { parseArgs, type ConfigArgs } from './args.js';
export { ConfigError } from './errors.js';
export { IniParseError, parseIni, type IniEntry, type IniSection } from './iniparser.js';
export { loadConfig, type LoadOptions } from './loader.js';
export { OPTIONS, type Config, type GroupConfig, type GroupName, type OptionSpec, type OptType } from './options.js';
export { MASK, renderConfig, renderMarkdownReference, renderSample } from './render.js';
export { DEFAULT_AMQP_PORT, maskUrl, parseTransportUrl, type TransportHost, type TransportUrl } from './transport.js';
