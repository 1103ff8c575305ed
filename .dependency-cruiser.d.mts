// Types of .dependency-cruiser.mjs for the layer test (the config stays JavaScript: the depcruise CLI loads it).
import type { IConfiguration } from "dependency-cruiser";
export declare const layers: Record<string, string[]>;
declare const config: IConfiguration & Required<Pick<IConfiguration, "forbidden" | "options">>;
export default config;
